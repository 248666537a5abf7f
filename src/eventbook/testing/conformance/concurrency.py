"""Concurrency: racing writers with the same expectation (one wins), and parallel writers
with readers and a subscription that must never see a gap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import eventbook as eb
from eventbook.testing.conformance.helpers import Consumer, new, positions, run_in_threads, versions


class ConcurrencyTests:
    """Appends and reads from many threads at once."""

    def test_racing_writers_one_wins(self, store: eb.EventStore) -> None:
        store.append([new("race-1")])
        barrier = threading.Barrier(16)

        def write(i: int) -> eb.AppendResult:
            barrier.wait(timeout=30)
            events = [new("race-1", "Raced", {"w": i}), new("race-1", "Raced", {"w": i})]
            return store.append(events, expected={"race-1": 1})

        outcomes = run_in_threads(16, write)
        wins = [o for o in outcomes if isinstance(o, eb.AppendResult)]
        losses = [o for o in outcomes if isinstance(o, eb.WrongExpectedVersion)]
        assert len(wins) == 1 and len(losses) == 15, f"outcomes: {outcomes!r}"
        [win] = wins
        assert win.versions == {"race-1": 3} and (win.first_position, win.last_position) == (2, 3)
        assert all((e.stream, e.expected, e.actual) == ("race-1", 1, 3) for e in losses)
        winner = outcomes.index(win)
        assert [e.data for e in store.read_stream("race-1", from_version=2)] == [{"w": winner}] * 2
        assert store.head_position() == 3

    def test_parallel_writers_and_readers_see_no_gap(self, store: eb.EventStore) -> None:
        writers, each = 8, 200
        total = writers * each
        done = threading.Event()
        consumer = Consumer(store.subscribe(after=0, idle_timeout=30), stop_at=total)

        def write(w: int) -> list[eb.AppendResult]:
            return [
                store.append([new(f"w-{w}", data={"i": i})], expected={f"w-{w}": i})
                for i in range(each)
            ]

        def read() -> int:
            seen, head = 0, 0
            deadline = time.monotonic() + 60
            while seen < total and time.monotonic() < deadline:
                finished = done.is_set()
                new_head = store.head_position()
                assert new_head >= head, "head_position never goes back"
                head = new_head
                for event in store.read_all(after=seen):
                    assert event.position == seen + 1, f"after {seen} came {event.position}"
                    seen = event.position
                assert seen >= head, "every position up to head_position is readable"
                if finished:
                    break  # the writers are done (or failed): nothing more will come
            return seen

        reader_outcome: list[Any] = []
        reader = threading.Thread(target=lambda: reader_outcome.append(_catch(read)), daemon=True)
        reader.start()
        results = run_in_threads(writers, write)
        done.set()
        reader.join(60)
        assert not reader.is_alive() and reader_outcome == [total], f"reader: {reader_outcome!r}"
        for outcome in results:
            assert isinstance(outcome, list), f"a writer failed: {outcome!r}"
        assert sorted(r.first_position for rs in results for r in rs) == list(range(1, total + 1))
        assert positions(store.read_all()) == list(range(1, total + 1))
        for w in range(writers):
            events = list(store.read_stream(f"w-{w}"))
            assert versions(events) == list(range(1, each + 1))
            assert [e.data["i"] for e in events] == list(range(each))
            assert positions(events) == sorted(positions(events))
        consumer.join(30)
        assert consumer.error is None
        assert positions(consumer.got) == list(range(1, total + 1))


def _catch(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except BaseException as error:
        return error
