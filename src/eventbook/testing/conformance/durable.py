"""Durability across close and reopen: `DurableStoreContract` is the store contract plus the
reopen tests, for stores that keep their data (a reopenable factory such as PathStoreFactory)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import eventbook as eb
from eventbook import limits
from eventbook.testing.conformance.contract import StoreContract
from eventbook.testing.conformance.factories import StoreFactory
from eventbook.testing.conformance.helpers import (
    ROUND_TRIP_DATA,
    Deposited,
    assert_same_json,
    new,
    positions,
    state_of,
    versions,
)


class DurableStoreContract(StoreContract):
    """The store contract plus durability across close and reopen; the factory must be
    reopenable (PathStoreFactory)."""

    @pytest.fixture(autouse=True)
    def _factory_reopens(self, store_factory: StoreFactory) -> None:
        assert store_factory.reopenable, (
            "DurableStoreContract needs a factory that can reopen stores (reopenable = True); "
            "use StoreContract for stores that cannot be reopened"
        )

    def _write_a_mix(self, store: eb.EventStore) -> None:
        store.append([new("a-1", data=ROUND_TRIP_DATA, metadata={"m": 1})], commit_id="c-1")
        store.append(
            [
                new("a-1"),
                new("b-1", occurred_at=datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
                eb.NewEvent.of("b-1", Deposited(amount=3)),
                new("é-1", id="evt-x", schema_version=4),
            ],
            expected={"a-1": 1, "b-1": eb.NO_STREAM},
            commit_id="c-2",
            metadata={"actor": "ann"},
        )
        store.append([new("c-1") for _ in range(10)])

    def test_reopen_keeps_every_event_and_stream(self, store_factory: StoreFactory) -> None:
        store = store_factory.new()
        self._write_a_mix(store)
        events, streams, head = list(store.read_all()), list(store.streams()), store.head_position()
        backward = list(store.read_stream("b-1", backward=True))
        store = store_factory.reopen(store)
        assert store.head_position() == head == 15
        assert list(store.read_all()) == events
        assert list(store.streams()) == streams
        assert list(store.read_stream("b-1", backward=True)) == backward
        assert {s: store.stream_version(s) for s in ["a-1", "b-1", "c-1", "é-1", "x-1"]} == {
            "a-1": 2,
            "b-1": 2,
            "c-1": 10,
            "é-1": 1,
            "x-1": 0,
        }
        assert_same_json(events[0].data, ROUND_TRIP_DATA)
        assert events[3].as_(Deposited) == Deposited(amount=3)

    def test_reopen_keeps_commit_ids(self, store_factory: StoreFactory) -> None:
        store = store_factory.new()
        events = [new("a-1", data={"n": 1}), new("b-1")]
        first = store.append(events, expected={"a-1": eb.NO_STREAM}, commit_id="c-1")
        store.append([new("z-1")])
        store = store_factory.reopen(store)
        before = state_of(store)
        assert store.append(events, expected={"a-1": eb.NO_STREAM}, commit_id="c-1") == first
        with pytest.raises(eb.DuplicateCommit) as info:
            store.append([new("a-1", data={"n": 2})], commit_id="c-1")
        assert info.value.first_position == 1
        assert state_of(store) == before

    def test_positions_and_versions_continue_after_reopen(
        self, store_factory: StoreFactory
    ) -> None:
        store = store_factory.new()
        store.append([new("a-1"), new("a-1"), new("b-1")])
        last_time = list(store.read_all())[-1].recorded_at
        store = store_factory.reopen(store)
        with pytest.raises(eb.WrongExpectedVersion) as info:
            store.append([new("a-1")], expected={"a-1": eb.NO_STREAM})
        assert info.value.actual == 2
        result = store.append([new("a-1"), new("c-1")], expected={"a-1": 2, "c-1": eb.NO_STREAM})
        assert (result.first_position, result.last_position) == (4, 5)
        assert result.versions == {"a-1": 3, "c-1": 1}
        assert positions(store.read_all()) == [1, 2, 3, 4, 5]
        assert list(store.read_all())[-1].recorded_at >= last_time

    def test_reopen_an_empty_store(self, store_factory: StoreFactory) -> None:
        store = store_factory.reopen(store_factory.new())
        assert state_of(store) == (0, [])
        assert store.append([new("a-1")]).first_position == 1

    def test_reopen_again_and_again(self, store_factory: StoreFactory) -> None:
        store = store_factory.new()
        for i in range(6):
            store.append([new(f"s-{i % 2}", data={"i": i}), new("all-1")], commit_id=f"c-{i}")
            store = store_factory.reopen(store)
            assert store.head_position() == 2 * (i + 1)
        assert [e.data.get("i") for e in store.read_all()] == [
            v for i in range(6) for v in (i, None)
        ]
        assert store.stream_version("all-1") == 6

    def test_reopen_keeps_more_than_a_page(self, store_factory: StoreFactory) -> None:
        total = limits.read_page_count_max + 100
        store = store_factory.new()
        store.append([new("big-1", data={"i": i}) for i in range(total)])
        store = store_factory.reopen(store)
        assert versions(store.read_stream("big-1", backward=True)) == list(range(total, 0, -1))
        assert [e.data["i"] for e in store.read_all(after=total - 50)] == list(
            range(total - 50, total)
        )
        assert store.append([new("big-1")]).versions == {"big-1": total + 1}

    def test_subscription_resumes_after_reopen(self, store_factory: StoreFactory) -> None:
        store = store_factory.new()
        store.append([new("a-1") for _ in range(6)])
        sub = store.subscribe(after=0)
        seen = [next(sub) for _ in range(4)]
        sub.close()
        store = store_factory.reopen(store)
        store.append([new("a-1")])
        rest = list(store.subscribe(after=seen[-1].position, idle_timeout=0.2))
        assert positions(seen + rest) == list(range(1, 8))
