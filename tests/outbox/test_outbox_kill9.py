"""kill -9 of the relay and of the consumer at random points, through a real NATS server:
every event's effect is applied exactly once, in order per stream.

The test process owns a NATS server and an embedded log, and appends to it from a thread
the whole time (one or two streams per commit). Each round it makes sure a relay process and
a consumer process (outbox_process.py) are running, waits a random moment, and SIGKILLs the
relay, the consumer or both. At the end it starts both once more, waits until every event of
the log has its effect, and checks the consumer's `effects` table: each event id exactly once,
none missing, and each stream's versions 1, 2, 3, ... in the order they were applied.

EVENTBOOK_OUTBOX_KILLS sets the rounds (default 8; the long variant 80); EVENTBOOK_SEED
replays the choices.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import eventbook as eb
from eventbook.testing.nats_server import nats_server

PROCESS = Path(__file__).with_name("outbox_process.py")
STREAMS = [f"{c}-{i}" for c in ("order", "payment", "ship.ment") for i in range(4)]


class Appender:
    def __init__(self, store: eb.EventStore, seed: int) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            streams = self.rng.sample(STREAMS, self.rng.choice([1, 1, 2]))
            self.store.append(
                [eb.NewEvent(s, "Happened", {"r": self.rng.random()}) for s in streams]
            )
            time.sleep(self.rng.choice([0.0005, 0.002, 0.005]))

    def stop(self) -> None:
        self.done.set()
        self.thread.join(30)


class Child:
    def __init__(self, args: list[str], out: Path) -> None:
        self.out = out
        with out.open("wb") as stdout:
            self.proc = subprocess.Popen(
                [sys.executable, str(PROCESS), *args],
                stdout=stdout,
                stderr=subprocess.PIPE,
                cwd=PROCESS.parent,
            )
        deadline = time.monotonic() + 30
        while b"READY" not in out.read_bytes():
            assert self.proc.poll() is None, self.proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"{args[0]} never got ready"
            time.sleep(0.005)

    def kill(self) -> None:
        alive = self.proc.poll() is None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        assert not alive or self.proc.returncode == -signal.SIGKILL, (
            self.proc.stderr.read().decode()  # type: ignore[union-attr]
        )
        self.proc.stderr.close()  # type: ignore[union-attr]


def read_effects(database: Path) -> list[tuple]:
    if not database.exists():
        return []
    with sqlite3.connect(database, timeout=30) as db:
        try:
            return db.execute(
                "SELECT event_id, stream, version, position FROM effects ORDER BY rowid"
            ).fetchall()
        except sqlite3.OperationalError:
            return []


def problems_in(store: eb.EventStore, rows: list[tuple]) -> list[str]:
    found = []
    seen: dict[str, int] = {}
    for event_id, *_ in rows:
        seen[event_id] = seen.get(event_id, 0) + 1
    twice = [i for i, n in seen.items() if n > 1]
    if twice:
        found.append(f"{len(twice)} effects applied more than once, e.g. {twice[:3]}")
    missing = [e.id for e in store.read_all() if e.id not in seen]
    if missing:
        found.append(f"{len(missing)} effects never applied, e.g. {missing[:3]}")
    last: dict[str, int] = {}
    for _, stream, version, position in rows:
        if version != last.get(stream, 0) + 1:
            found.append(
                f"{stream}: version {version} (position {position}) after {last.get(stream)}"
            )
        last[stream] = max(version, last.get(stream, 0))
    return found


def kill_loop(tmp_path: Path, rounds: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    database = tmp_path / "effects.sqlite"
    checkpoint = tmp_path / "relay.checkpoint"
    with nats_server() as server, eb.open_store(tmp_path / "log", sync="none") as store:
        relay_args = ["relay", str(store.root), server.url, str(checkpoint)]  # type: ignore[attr-defined]
        consumer_args = ["consumer", server.url, str(database)]
        children: dict[str, Child | None] = {"relay": None, "consumer": None}

        def ensure(role: str, n: int) -> None:
            if children[role] is None:
                args = relay_args if role == "relay" else consumer_args
                children[role] = Child(
                    [*args, str(rng.randrange(2**32))], tmp_path / f"{role}{n}.out"
                )

        appender = Appender(store, rng.randrange(2**32))
        try:
            for r in range(rounds):
                ensure("relay", r)
                ensure("consumer", r)
                time.sleep(rng.uniform(0.05, 0.3) if rng.random() < 0.7 else rng.uniform(0.3, 1.0))
                victims = rng.choice([["relay"], ["consumer"], ["relay", "consumer"]])
                for role in victims:
                    children[role].kill()  # type: ignore[union-attr]
                    children[role] = None
                applied = len(read_effects(database))
                print(
                    f"round {r}: killed {victims}; head {store.head_position()}, effects {applied}"
                )
        finally:
            appender.stop()
        try:
            ensure("relay", rounds)
            ensure("consumer", rounds)
            head = store.head_position()
            deadline = time.monotonic() + 60
            while len({row[0] for row in read_effects(database)}) < head:
                assert time.monotonic() < deadline, "the last relay and consumer never caught up"
                time.sleep(0.05)
            time.sleep(0.2)  # anything applied twice late would show now
        finally:
            for child in children.values():
                if child is not None:
                    child.kill()
        rows = read_effects(database)
        print(f"final: head {head}, effects {len(rows)}")
        return problems_in(store, rows)


def _run(tmp_path: Path, default_rounds: int) -> None:
    seed = int(os.environ.get("EVENTBOOK_SEED") or random.randrange(2**32))
    rounds = int(os.environ.get("EVENTBOOK_OUTBOX_KILLS", default_rounds))
    print(f"EVENTBOOK_SEED={seed}")
    problems = kill_loop(tmp_path, rounds, seed)
    assert not problems, f"not exactly once (EVENTBOOK_SEED={seed}): {problems[:5]}"


def test_relay_and_consumer_kill9_apply_each_effect_exactly_once(tmp_path: Path) -> None:
    _run(tmp_path, 8)


@pytest.mark.long
def test_relay_and_consumer_kill9_long(tmp_path: Path) -> None:
    _run(tmp_path, 80)


def test_the_check_catches_a_double_and_a_reordering(tmp_path: Path) -> None:
    """The check above can fail: a duplicate effect, a missing one, and a stream out of order."""
    with eb.open_store("memory://") as store:
        a = store.append([eb.NewEvent("order-1", "A")])
        store.append([eb.NewEvent("order-1", "B")])
        e1, e2 = list(store.read_all())
        assert a.first_position == 1
        assert problems_in(store, [(e1.id, "order-1", 1, 1), (e2.id, "order-1", 2, 2)]) == []
        doubled = problems_in(store, [(e1.id, "order-1", 1, 1), (e1.id, "order-1", 1, 1)])
        assert any("more than once" in p for p in doubled)
        assert any("never applied" in p for p in doubled)
        swapped = problems_in(store, [(e2.id, "order-1", 2, 2), (e1.id, "order-1", 1, 1)])
        assert any("version 2" in p for p in swapped)
