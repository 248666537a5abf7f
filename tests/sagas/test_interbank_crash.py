"""Two banks as two processes linked through NATS JetStream (tests/sagas/bank_process.py),
each killed with SIGKILL at random moments, round after round, then both run to the end. The
money in the two banks together is what it was; every transfer is closed; a completed one was
credited at B exactly once and never refunded, a refunded one was refunded at A exactly once
and never credited, a failed one moved nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import bank_process

import eventbook as eb
from eventbook.examples import interbank as ib
from eventbook.testing.nats_server import nats_server

PROCESS = Path(__file__).with_name("bank_process.py")
TRANSFERS = 30


def start(role: str, folder: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(PROCESS), role, str(folder), url, str(TRANSFERS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=PROCESS.parent,
    )


def test_two_banks_killed_at_random_conserve_money(tmp_path: Path) -> None:
    seed = int(os.environ.get("EVENTBOOK_SEED", random.randrange(2**32)))
    print(f"seed {seed} (EVENTBOOK_SEED={seed} replays it)")
    rng = random.Random(seed)
    with nats_server() as server:
        for _ in range(4):
            a, b = start("a", tmp_path, server.url), start("b", tmp_path, server.url)
            time.sleep(rng.uniform(0.5, 2.0))
            for proc in rng.sample([a, b], rng.choice([1, 2])):
                proc.send_signal(signal.SIGKILL)
            time.sleep(rng.uniform(0.0, 0.5))
            for proc in (a, b):
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        a, b = start("a", tmp_path, server.url), start("b", tmp_path, server.url)
        out, err = a.communicate(timeout=120)
        (tmp_path / "stop").touch()
        b.wait(30)
    check(tmp_path)  # first: it says what went wrong, if anything did
    assert b"DONE" in out, err.decode()[-3000:]


def check(folder: Path) -> None:
    with (
        eb.open_store(folder / "a", readonly=True) as a,
        eb.open_store(folder / "b", readonly=True) as b,
    ):
        engine_a, engine_b = eb.Engine(ib.app_a, a), eb.Engine(ib.app_b, b)
        total = sum(
            engine_a.state(f"account-{n}").state.balance for n in bank_process.ACCOUNTS["a"]
        ) + sum(engine_b.state(f"account-{n}").state.balance for n in bank_process.ACCOUNTS["b"])
        assert total == bank_process.START_BALANCE * 4, "money is neither made nor lost"
        credits = Counter(
            _saga_of(e) for e in b.read_all() if e.type == "Deposited" and _saga_of(e)
        )
        refunds = Counter(
            _saga_of(e) for e in a.read_all() if e.type == "Deposited" and _saga_of(e)
        )
        for tid, _source, _target, amount in bank_process.transfers(TRANSFERS):
            status = engine_a.state(f"interbank-{tid}").state.status
            assert status in ("completed", "refunded", "failed"), (tid, status)
            want = {"completed": (1, 0), "refunded": (0, 1), "failed": (0, 0)}[status]
            assert (credits[tid], refunds[tid]) == want, (tid, status, amount)


def _saga_of(event: eb.RecordedEvent) -> str | None:
    command_id = event.metadata.get("command", {}).get("id", "")
    if command_id.startswith("saga_interbank-"):
        return command_id.split("/")[0].removeprefix("saga_interbank-")
    return None
