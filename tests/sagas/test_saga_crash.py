"""Crashes of a process running the order saga (tests/sagas/saga_process.py), on the embedded
log: exhaustively, an exit at every step of a small run (reactions decided, reactions
committed, each command executed), then a run to the end; and kill -9 from outside at random
moments, round after round. After each: every order reached an end, every saga too (completed
or compensated), each command the saga issued was applied once (its id is on one commit), each
input was reacted to once, and the credit held equals the approved orders' totals, within the
limit (no credit lost, none counted twice)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import saga_process

import eventbook as eb
from eventbook.examples import shop
from eventbook.sagas.inspect import list_sagas

PROCESS = Path(__file__).with_name("saga_process.py")


def run(store: Path, orders: int, crash_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROCESS), str(store), str(orders), str(crash_at)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROCESS.parent,
    )


def check(store_path: Path, orders: int) -> None:
    with eb.open_store(store_path, readonly=True) as store:
        engine = eb.Engine(shop.app, store)
        events = list(store.read_all())
        customer = engine.state("customer-c1").state
        approved = {}
        for i in range(orders):
            order = engine.state(f"order-o{i}").state
            assert order.status in ("APPROVED", "REJECTED", "CANCELLED"), (i, order)
            if order.status == "APPROVED":
                approved[f"o{i}"] = order.total
        assert customer.reservations == approved, "credit held == approved orders"
        assert customer.reserved <= customer.credit_limit
        statuses = {s.id: s.status for s in list_sagas(store)}
        assert len(statuses) == orders
        assert set(statuses.values()) <= {"completed", "compensated"}, statuses
        commits_of: dict[str, set[str | None]] = {}
        for e in events:
            command = e.metadata.get("command")
            if isinstance(command, dict) and command.get("id", "").startswith("saga_"):
                commits_of.setdefault(command["id"], set()).add(e.commit_id)
        assert commits_of and all(len(c) == 1 for c in commits_of.values()), "applied once"
        inputs = Counter(
            (e.stream, e.data["input"].get("position"))
            for e in events
            if e.type == "SagaReacted" and "position" in e.data["input"]
        )
        assert max(inputs.values()) == 1, "each input reacted to once"


ORDERS = 5


def test_a_crash_at_every_step_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    whole = run(tmp_path / "whole", ORDERS, -1)
    assert whole.returncode == 0, whole.stderr
    steps = int(whole.stdout.split()[-1])
    assert steps > 20
    check(tmp_path / "whole", ORDERS)
    for crash_at in range(steps):
        store = tmp_path / f"crash-{crash_at}"
        crashed = run(store, ORDERS, crash_at)
        assert crashed.returncode == 137, (crash_at, crashed.stderr[-2000:])
        finished = run(store, ORDERS, -1)
        assert finished.returncode == 0, (crash_at, finished.stderr[-2000:])
        check(store, ORDERS)


@pytest.mark.parametrize("rounds", [pytest.param(6, id="6-kills")])
def test_kill9_at_random_moments(tmp_path: Path, rounds: int) -> None:
    seed = int(os.environ.get("EVENTBOOK_SEED", random.randrange(2**32)))
    print(f"seed {seed} (EVENTBOOK_SEED={seed} replays it)")
    rng = random.Random(seed)
    store, orders = tmp_path / "store", 40
    for _ in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, str(PROCESS), str(store), str(orders), "-1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=PROCESS.parent,
        )
        time.sleep(rng.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finished = run(store, orders, -1)
    assert finished.returncode == 0, finished.stderr[-2000:]
    check(store, orders)
    assert saga_process.TOTALS  # the process's own module is importable (its checks)
