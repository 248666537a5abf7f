"""The writer process of the NATS crash tests: appends commits with ids from four threads and
reports each one after `append` returned (so a reported commit was acknowledged).

    python nats_writer.py URL STREAM REPLICAS ROUND

Prints "READY" once the store is open, then one line per acknowledged commit,
"commit-id first last", each with a single write(2). An append that fails (the server stayed
away longer than the store retries) is reported as "FAILED commit-id" and tried again.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import eventbook as eb

RUN_SECONDS_MAX = 60.0
THREADS = 4


def commit_size(commit_id: str) -> int:
    return 1 + sum(commit_id.encode()) % 5


def events_of(commit_id: str) -> list[eb.NewEvent]:
    thread = commit_id.split("-")[1]
    return [
        eb.NewEvent(f"acct-{thread}", "Moved", {"commit": commit_id, "i": i})
        for i in range(commit_size(commit_id))
    ]


def main() -> None:
    url, stream, replicas, round_no = sys.argv[1:5]
    store = eb.open_store(url, stream=stream, replicas=int(replicas))
    os.write(1, b"READY\n")
    deadline = time.monotonic() + RUN_SECONDS_MAX

    def run(thread: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            cid = f"r{round_no}-{thread}-{n}"
            try:
                result = store.append(events_of(cid), commit_id=cid)
            except eb.StoreUnavailable:
                os.write(1, f"FAILED {cid}\n".encode())
                continue  # the same commit id again: idempotent
            os.write(1, f"{cid} {result.first_position} {result.last_position}\n".encode())
            n += 1

    workers = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
