"""The adversary: a writer whose transaction stays open after it took its positions while
other writers commit later positions, with a reader polling the log all the while.

The store's readers take only events of transactions older than every running one, and the
append latch makes transaction-id order equal position order, so the reader must stop below
the held writer's first position until it ends, then see its events (or, after a rollback,
never), each exactly once and in position order. The negative control shows the adversary
really opens the hole: a reader that just orders by position skips the late commit.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

import eventbook as eb
from eventbook.backends.postgres.store import _append_params, _Statements
from eventbook.store.commit import prepare_commit

ROUNDS = 1000


@pytest.fixture
def schema(drop_schema: Callable[[str], None]) -> Iterator[str]:
    name = f"adv_{random.randrange(16**8):08x}"
    yield name
    drop_schema(name)


@pytest.fixture
def store(pg_url: str, schema: str) -> Iterator[eb.EventStore]:
    with eb.open_store(pg_url, schema=schema) as s:
        yield s


@pytest.fixture
def adversaries(pg_url: str) -> Iterator[list[psycopg.Connection]]:
    """Two connections for held writers (a round holds at most two at once)."""
    conns = [psycopg.connect(pg_url, autocommit=True) for _ in range(2)]
    yield conns
    for conn in conns:
        conn.close()


class HeldWriter:
    """An append (through the store's own append function) whose transaction stays open
    until end(commit) commits or rolls it back."""

    def __init__(self, conn: psycopg.Connection, schema: str, stream: str, count: int) -> None:
        self.conn = conn
        self.conn.execute("BEGIN")
        prepared = prepare_commit(
            [eb.NewEvent(stream, "Held", {"i": i}) for i in range(count)], None, None, None
        )
        row = self.conn.execute(
            _Statements(schema).append, _append_params(prepared), binary=True
        ).fetchone()
        assert row[0] == "ok"
        self.first, self.last = row[1], row[2]

    def end(self, commit: bool) -> None:
        self.conn.execute("COMMIT" if commit else "ROLLBACK")


class Poller:
    """Reads the log after its checkpoint, over and over, on a thread."""

    def __init__(self, read_after: Callable[[int], list[int]]) -> None:
        self.read_after = read_after
        self.checkpoint = 0
        self.seen: list[int] = []
        self.polls = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for position in self.read_after(self.checkpoint):
                    assert position > self.checkpoint, "positions arrive in order, once"
                    self.seen.append(position)
                    self.checkpoint = position
                self.polls += 1
        except BaseException as exc:
            self.error = exc

    def settle(self, polls: int = 2, timeout: float = 10.0) -> None:
        """Wait until the poller has read the log `polls` more times from start to end."""
        target = self.polls + polls + 1
        deadline = time.monotonic() + timeout
        while self.polls < target and time.monotonic() < deadline and self.error is None:
            time.sleep(0.0002)
        assert self.error is None, self.error
        assert self.polls >= target, "the poller stopped polling"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert self.error is None, self.error


def test_a_held_writer_is_never_skipped(
    store: eb.EventStore, schema: str, adversaries: list[psycopg.Connection]
) -> None:
    rng = random.Random(20261125)
    poller = Poller(lambda after: [e.position for e in store.read_all(after=after)])
    committed: set[int] = set()
    rolled_back: set[int] = set()
    try:
        for round_no in range(ROUNDS):
            held = [
                HeldWriter(adversaries[k], schema, f"held-{round_no}-{k}", rng.randint(1, 3))
                for k in range(rng.choice((1, 1, 2)))
            ]
            for _ in range(rng.randint(1, 3)):
                r = store.append([eb.NewEvent(f"other-{rng.randrange(20)}", "Other")] * 1)
                committed.update(range(r.first_position, r.last_position + 1))
            rng.shuffle(held)
            while held:
                poller.settle()
                lowest = min(h.first for h in held)
                assert poller.checkpoint < lowest, (
                    f"round {round_no}: the reader passed position {lowest}, which a "
                    f"transaction still open holds (checkpoint {poller.checkpoint})"
                )
                assert store.head_position() < lowest
                writer = held.pop()
                commit = rng.random() < 0.85
                writer.end(commit)
                (committed if commit else rolled_back).update(range(writer.first, writer.last + 1))
        poller.settle()
    finally:
        poller.stop()
    everything = [e.position for e in store.read_all()]
    assert everything == sorted(committed)
    assert poller.seen == everything, "every committed event seen exactly once, in order"
    assert not set(poller.seen) & rolled_back
    assert rolled_back, "some rounds rolled back (holes from aborted transactions)"


def test_a_subscription_waits_for_the_held_writer(
    store: eb.EventStore, schema: str, adversaries: list[psycopg.Connection]
) -> None:
    store.append([eb.NewEvent("a-1", "First")])
    writer = HeldWriter(adversaries[0], schema, "held-1", 2)
    later = store.append([eb.NewEvent("a-1", "Later")])
    with store.subscribe(after=0) as sub:
        got = [next(sub).position]
        assert got == [1]
        fetched: list[int] = []
        follow = threading.Thread(target=lambda: fetched.extend(next(sub).position for _ in "123"))
        follow.start()
        time.sleep(0.3)
        assert fetched == [], "nothing is delivered past a position a running transaction holds"
        writer.end(commit=True)
        follow.join(10)
    assert fetched == [writer.first, writer.last, later.first_position]


def test_negative_control_a_reader_that_orders_by_position_alone_skips(
    store: eb.EventStore, pg_url: str, schema: str, adversaries: list[psycopg.Connection]
) -> None:
    """Without the transaction filter the same adversary makes a reader skip the late
    commit: the filter is what the test above depends on."""
    naive = sql.SQL("SELECT position FROM {}.events WHERE position > %s ORDER BY position").format(
        sql.Identifier(schema)
    )

    def read_naively(after: int) -> list[int]:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            return [row[0] for row in conn.execute(naive, [after])]

    poller = Poller(read_naively)
    try:
        writer = HeldWriter(adversaries[0], schema, "held-1", 1)
        store.append([eb.NewEvent("other-1", "Other")])
        poller.settle()
        writer.end(commit=True)
        poller.settle()
    finally:
        poller.stop()
    everything = [e.position for e in store.read_all()]
    assert everything == [1, 2]
    assert poller.seen == [2], "the naive reader skipped position 1, committed late"


def test_eight_writers_and_a_subscription_see_every_event_once(store: eb.EventStore) -> None:
    per_writer = 150
    done = threading.Event()

    def write(i: int) -> None:
        rng = random.Random(i)
        for n in range(per_writer):
            size = rng.choice((1, 1, 2, 5))
            store.append([eb.NewEvent(f"w{i}-{rng.randrange(5)}", "E", {"n": n})] * size)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    got: list[int] = []

    def follow() -> None:
        with store.subscribe(after=0, idle_timeout=2.0) as sub:
            for event in sub:
                got.append(event.position)
                if done.is_set() and event.position >= store.head_position():
                    return

    follower = threading.Thread(target=follow)
    follower.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    follower.join(30)
    everything = [e.position for e in store.read_all()]
    assert everything == list(range(1, len(everything) + 1)), "no hole: nothing was aborted"
    assert got == everything
    versions: dict[str, list[int]] = {}
    for e in store.read_all():
        versions.setdefault(e.stream, []).append(e.version)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
