"""The writer process the kill tests SIGKILL: appends commits and reports each one after
`append` returned (so a reported commit was acknowledged).

    python crash_writer.py STORE SEED GENERATION THREADS SYNC

Prints "READY" once the store is open, then one JSON line per acknowledged commit, each with a
single write(2) so that a kill never leaves half a line that parses.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import crash_workload as w

import eventbook as eb

RUN_SECONDS_MAX = 60.0  # a writer the test forgot to kill stops by itself


def main() -> None:
    path, seed, generation, threads, sync = sys.argv[1:6]
    w.apply_small_limits()
    store = eb.open_store(path, sync=sync)
    os.write(1, b"READY\n")
    deadline = time.monotonic() + RUN_SECONDS_MAX

    def run(thread: int) -> None:
        number = 0
        while time.monotonic() < deadline:
            cid = w.commit_id(int(generation), thread, number)
            result = store.append(w.commit_events(int(seed), cid), commit_id=cid)
            os.write(1, w.ack_line(cid, result))
            number += 1

    workers = [threading.Thread(target=run, args=(t,)) for t in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.close()


if __name__ == "__main__":
    main()
