"""kill -9 of a writer process at random points: after every kill the store reopens with every
acknowledged commit present exactly as written, no phantom, no partial commit, positions gap-free,
per-stream versions contiguous, commit-id retries idempotent, and `verify` clean.

One store takes many kills in a row, so recovery runs on a growing log that has rolled over
segments many times (the writer uses small segments). Some kills land while the writer is still
opening (and so recovering) the store: after a read-only check the next writer does the recovery.

CI runs a bounded number of kills (EVENTBOOK_KILLS, default 100). The `long` test runs thousands
(EVENTBOOK_LONG_KILLS, default 3000): `pytest -m long tests/crash`. Both print their seed; set
EVENTBOOK_SEED to replay the same commits, kill delays and check modes (kill timing against the
writer is the OS scheduler's, so a replay is close, not exact).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import crash_workload as w
import pytest

import eventbook as eb
from eventbook.store.registry import verify_store

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS_PER_STORE = 50  # a fresh store now and then keeps the checks' cost linear
READY_SECONDS_MAX = 20.0


def _seed() -> int:
    return int(os.environ.get("EVENTBOOK_SEED") or random.randrange(2**32))


def _spawn(
    store: Path, seed: int, generation: int, threads: int, sync: str, out: Path, err: Path
) -> subprocess.Popen:
    with out.open("ab") as stdout, err.open("ab") as stderr:
        return subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                str(store),
                str(seed),
                str(generation),
                str(threads),
                sync,
            ],
            stdout=stdout,
            stderr=stderr,
            cwd=WRITER.parent,
        )


def _wait_ready(proc: subprocess.Popen, out: Path, err: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS_MAX
    while b"READY\n" not in out.read_bytes():
        assert proc.poll() is None, f"the writer died by itself:\n{err.read_text()}"
        assert time.monotonic() < deadline, "the writer never got ready"
        time.sleep(0.002)


def _kill_one(rng: random.Random, store: Path, seed: int, generation: int, work: Path) -> str:
    """Start a writer generation, SIGKILL it at a random moment; return its output."""
    threads = 1 if rng.random() < 0.6 else 3
    sync = "always" if rng.random() < 0.8 else "none"
    out, err = work / f"g{generation}.out", work / f"g{generation}.err"
    proc = _spawn(store, seed, generation, threads, sync, out, err)
    try:
        if rng.random() < 0.15:  # early: during start-up, often while the open recovers
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            _wait_ready(proc, out, err)
            time.sleep(min(rng.expovariate(1 / 0.05), 0.25))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, (
        f"the writer exited by itself ({proc.returncode}):\n{err.read_text()}"
    )
    return out.read_text()


def _check_writable(
    store: Path, seed: int, acks: dict[str, w.Ack], generation: int, where: str
) -> w.Seen:
    s = eb.open_store(store)
    try:
        seen = w.check_log(s, seed, acks, where)
        head = s.head_position()
        # Retrying the last acknowledged commit of each thread of the killed writer, and the
        # one after it if that is in the log unacknowledged, gives the same positions and
        # writes nothing.
        for (g, t), k in seen.last_k.items():
            if g != generation:
                continue
            for cid in {w.commit_id(g, t, k), w.commit_id(g, t, max(0, k - 1))}:
                again = s.append(w.commit_events(seed, cid), commit_id=cid)
                assert (again.first_position, again.last_position) == seen.commits[cid], where
        assert s.head_position() == head, f"{where}: a retry wrote again"
    finally:
        s.close()
    report = verify_store(store)
    assert report.ok, f"{where}: verify found {report.problems}"
    return seen


def run_kills(work: Path, kills: int, seed: int) -> None:
    print(f"kill -9 test: seed={seed} kills={kills} (replay: EVENTBOOK_SEED={seed})")
    rng = random.Random(seed)
    acks: dict[str, w.Ack] = {}
    store = work / "store-0"
    totals = {"acked": 0, "unacked_present": 0, "readonly_checks": 0}
    for n in range(kills):
        if n % KILLS_PER_STORE == 0:
            store, acks = work / f"store-{n}", {}
        output = _kill_one(rng, store, seed, n, work)
        new = w.parse_acks(output)
        acks.update((a.cid, a) for a in new)
        totals["acked"] += len(new)
        where = f"seed={seed} kill={n} store={store.name}"
        if not (store / "meta.json").exists():
            continue  # killed before the store existed
        if rng.random() < 0.3:
            # Read-only: no recovery here; the next writer recovers (and may be killed doing it).
            s = eb.open_store(store, readonly=True)
            try:
                seen = w.check_log(s, seed, acks, where + " (read-only)")
            finally:
                s.close()
            totals["readonly_checks"] += 1
        else:
            seen = _check_writable(store, seed, acks, n, where)
        totals["unacked_present"] += sum(
            1 for cid in seen.commits if cid not in acks and cid.startswith(f"g{n}t")
        )
    print(f"kill -9 test: {totals}")
    assert totals["acked"] > 0, "no writer ever acknowledged a commit: the test tested nothing"


def test_kill9_bounded(tmp_path: Path) -> None:
    run_kills(tmp_path, int(os.environ.get("EVENTBOOK_KILLS") or 100), _seed())


@pytest.mark.long
@pytest.mark.timeout(0)
def test_kill9_long(tmp_path: Path) -> None:
    run_kills(tmp_path, int(os.environ.get("EVENTBOOK_LONG_KILLS") or 3000), _seed())
