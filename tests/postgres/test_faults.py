"""Faults under the PostgreSQL store: connections cut at random points of an append (through
a loopback proxy), backends terminated under eight writers, and the server stopped at once
(SIGQUIT: no shutdown checkpoint, crash recovery on start) and started again.

What must hold: an append retried with its commit id is recorded exactly once; every
acknowledged append is there after the server comes back; versions stay gap-free per stream;
positions only have holes from aborted transactions; a subscriber that resumes from its
checkpoint sees every event once, in order.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

import eventbook as eb
from eventbook.testing.postgres_server import PostgresServer, postgres_server
from eventbook.testing.tcp_proxy import TcpProxy

CUT_ROUNDS = 80
RETRY_SECONDS = 30.0


@pytest.fixture
def schema(drop_schema: Callable[[str], None]) -> Iterator[str]:
    name = f"fault_{random.randrange(16**8):08x}"
    yield name
    drop_schema(name)


def append_until_recorded(
    store: eb.EventStore, events: list[eb.NewEvent], commit_id: str, **kw: object
) -> eb.AppendResult:
    """Append, and on an unknown outcome retry with the same commit id until it answers."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            return store.append(events, commit_id=commit_id, **kw)  # type: ignore[arg-type]
        except eb.StoreUnavailable as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{commit_id}: still failing after {RETRY_SECONDS}s") from exc
            time.sleep(0.02)


def check_log(store: eb.EventStore, commits: dict[str, int]) -> list[eb.RecordedEvent]:
    """Every commit id recorded exactly once, with all its events; versions gap-free."""
    events = list(store.read_all())
    positions = [e.position for e in events]
    assert positions == sorted(set(positions))
    by_commit: dict[str | None, int] = {}
    versions: dict[str, list[int]] = {}
    for e in events:
        by_commit[e.commit_id] = by_commit.get(e.commit_id, 0) + 1
        versions.setdefault(e.stream, []).append(e.version)
    assert by_commit == commits, "each commit exactly once, whole"
    for stream, got in versions.items():
        assert got == list(range(1, len(got) + 1)), f"{stream}: versions {got}"
    return events


def test_a_cut_append_retried_with_its_commit_id_is_recorded_once(pg_url: str, schema: str) -> None:
    parts = urlsplit(pg_url)
    rng = random.Random(7)
    commits: dict[str, int] = {}
    outcomes = {"cut": 0, "answered": 0}
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        via_proxy = pg_url.replace(f":{parts.port}/", f":{proxy.port}/")
        with eb.open_store(via_proxy, schema=schema, pool_size=2) as store:
            for n in range(CUT_ROUNDS):
                size = rng.randint(1, 4)
                events = [eb.NewEvent(f"acct-{rng.randrange(6)}", "Moved", {"n": n})] * size
                if rng.random() < 0.5:
                    proxy.cut_after(upstream=rng.randrange(0, 600))
                else:
                    proxy.cut_after(downstream=rng.randrange(0, 250))
                cid = f"cut-{n}"
                try:
                    first = store.append(events, commit_id=cid)
                    outcomes["answered"] += 1
                except eb.StoreUnavailable as exc:
                    assert exc.unknown_outcome
                    outcomes["cut"] += 1
                    first = None
                proxy.disarm()
                again = append_until_recorded(store, events, cid)
                if first is not None:
                    assert again == first
                commits[cid] = size
            assert proxy.cuts >= CUT_ROUNDS // 3, "the proxy really cut connections"
    assert outcomes["cut"] >= CUT_ROUNDS // 4, outcomes
    with eb.open_store(pg_url, schema=schema) as store:
        check_log(store, commits)


def test_terminated_backends_under_eight_writers(pg_url: str, schema: str) -> None:
    per_writer = 60
    commits: dict[str, int] = {}
    stop = threading.Event()
    kills = [0]

    def killer() -> None:
        rng = random.Random(3)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while not stop.is_set():
                pids = [
                    row[0]
                    for row in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    )
                ]
                if pids:
                    conn.execute("SELECT pg_terminate_backend(%s)", [rng.choice(pids)])
                    kills[0] += 1
                time.sleep(rng.uniform(0.005, 0.03))

    with eb.open_store(pg_url, schema=schema, pool_size=10) as store:
        seen: list[int] = []
        follower = Follower(store, seen)

        def write(i: int) -> None:
            rng = random.Random(i)
            for n in range(per_writer):
                size = rng.choice((1, 2, 3))
                cid = f"w{i}-{n}"
                events = [eb.NewEvent(f"w{i}-{rng.randrange(3)}", "E", {"n": n})] * size
                append_until_recorded(store, events, cid)
                commits[cid] = size

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        kill_thread = threading.Thread(target=killer)
        kill_thread.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stop.set()
        kill_thread.join(10)
        assert kills[0] >= 10, f"only {kills[0]} backends terminated"
        events = check_log(store, commits)
        follower.until(events[-1].position)
        assert seen == [e.position for e in events], "the follower saw each event once, in order"


class Follower:
    """A subscriber that resumes from its checkpoint when the store becomes unreachable."""

    def __init__(self, store: eb.EventStore, seen: list[int]) -> None:
        self.store = store
        self.seen = seen
        self.checkpoint = 0
        self.resumed = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.store.subscribe(after=self.checkpoint, idle_timeout=0.2) as sub:
                    for event in sub:
                        assert event.position > self.checkpoint
                        self.seen.append(event.position)
                        self.checkpoint = event.position
            except eb.StoreUnavailable:
                self.resumed += 1
                time.sleep(0.05)

    def until(self, position: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.checkpoint < position and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        self.thread.join(10)
        assert self.checkpoint >= position, f"follower at {self.checkpoint}, head {position}"


def test_an_immediate_stop_keeps_every_acknowledged_append() -> None:
    with postgres_server() as server:
        run_through_a_crash(server)


def run_through_a_crash(server: PostgresServer) -> None:
    acknowledged: dict[str, eb.AppendResult] = {}
    sizes: dict[str, int] = {}
    unknown: list[str] = []
    writing = threading.Event()
    writing.set()
    with eb.open_store(server.url, schema="crash", pool_size=6) as store:
        seen: list[int] = []
        follower = Follower(store, seen)

        def write(i: int) -> None:
            rng = random.Random(i)
            n = 0
            while writing.is_set():
                cid = f"w{i}-{n}"
                size = rng.choice((1, 2, 4))
                events = [eb.NewEvent(f"w{i}", "E", {"n": n})] * size
                try:
                    acknowledged[cid] = store.append(events, commit_id=cid)
                except eb.StoreUnavailable:
                    unknown.append(cid)
                    acknowledged[cid] = append_until_recorded(store, events, cid)
                sizes[cid] = size
                n += 1

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.8)
        before = dict(acknowledged)
        mark = follower.checkpoint  # a subscriber's checkpoint when the server went down
        server.stop("immediate")
        time.sleep(0.5)
        server.start()
        time.sleep(0.8)
        writing.clear()
        for t in threads:
            t.join(60)
        assert before, "appends were acknowledged before the crash"
        assert unknown, "some appends were in flight when the server stopped"
        events = check_log(store, sizes)
        by_position = {e.position: e for e in events}
        for cid, result in acknowledged.items():
            got = [by_position[p] for p in range(result.first_position, result.last_position + 1)]
            assert all(e.commit_id == cid for e in got), f"{cid} lost or moved"
        follower.until(events[-1].position)
        assert seen == [e.position for e in events], "a follower rides through the restart"
    with eb.open_store(server.url, schema="crash") as store:  # a new process, as it were
        with store.subscribe(after=mark, idle_timeout=0.5) as sub:
            resumed = [e.position for e in sub]
        assert resumed == [e.position for e in events if e.position > mark]
