"""kill -9 of a process running commands with ids, then resending them: every command's effect
is applied exactly once, every acknowledged command survives, and a replay verifies.

Each round starts a writer a little before the last acknowledged command (so it resends some
ids: they must return the first outcome and write nothing) and kills it at a random moment.
At the end every id up to the highest one ever started is sent once more, and each account's
balance must be exactly the sum of its deposits. EVENTBOOK_ENGINE_KILLS sets the rounds
(default 20); EVENTBOOK_SEED replays the choices.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import engine_writer as w

import eventbook as eb
from eventbook.engine.verification import verify_replay
from eventbook.examples import bank

WRITER = Path(__file__).with_name("engine_writer.py")


def _run_and_kill(store: Path, first: int, rng: random.Random, out: Path) -> list[int]:
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(store), str(first)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            cwd=WRITER.parent,
        )
    try:
        deadline = time.monotonic() + 20
        while b"READY" not in out.read_bytes():
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the writer never got ready"
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return [int(line.split()[1]) for line in out.read_text().splitlines() if line.startswith("ACK")]


def test_commands_survive_kill9_and_apply_exactly_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("EVENTBOOK_SEED") or random.randrange(2**32))
    rounds = int(os.environ.get("EVENTBOOK_ENGINE_KILLS", "20"))
    print(f"EVENTBOOK_SEED={seed}")
    rng = random.Random(seed)
    store = tmp_path / "bank"
    acked: set[int] = set()
    highest = -1
    for r in range(rounds):
        first = max(0, max(acked, default=-1) + 1 - rng.randrange(0, 6))
        got = _run_and_kill(store, first, rng, tmp_path / f"r{r}.out")
        acked.update(got)
        highest = max(highest, first, *got) if got else max(highest, first)
        with eb.open_store(store, readonly=True) as s:
            missing = [n for n in got if not s.read_commit(f"cmd:dep-{n}")]
            assert not missing, f"acknowledged commands lost: {missing[:5]} (seed {seed})"
    with eb.open_store(store) as s:
        while s.read_commit(f"cmd:dep-{highest + 1}"):  # durable, killed before its ACK
            highest += 1
        engine = eb.Engine(bank.app, s)
        for n in range(highest + 1):  # resend everything: each id applies once
            account = f"a{n % w.ACCOUNTS}"
            outcome = engine.execute(
                bank.Deposit(account_id=account, amount=w.amount_of(n)), command_id=f"dep-{n}"
            )
            assert outcome.accepted
            if n in acked:
                assert outcome.duplicate, f"acknowledged command dep-{n} was applied twice"
        for a in range(w.ACCOUNTS):
            want = sum(w.amount_of(n) for n in range(highest + 1) if n % w.ACCOUNTS == a)
            folded = engine.state(f"account-a{a}", use_snapshots=False)
            assert folded.state.balance == want, (a, folded.state.balance, want, seed)
            deposits = [e for e in s.read_stream(f"account-a{a}") if e.type == "Deposited"]
            ids = [e.metadata["command"]["id"] for e in deposits]
            assert len(ids) == len(set(ids)), "a command id appears twice in a stream"
        report = verify_replay(bank.app, s)
        assert report.ok, report.mismatches
    assert acked, "no command was acknowledged before the kills: the test proved nothing"
