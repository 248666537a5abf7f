"""Append: positions and versions, commit times, occurred_at, data and metadata round trips,
schema versions, event ids, typed events and exact stream ids."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import pytest

import eventbook as eb
from eventbook.testing.conformance.helpers import (
    ROUND_TRIP_DATA,
    Deposited,
    Withdrawn,
    assert_same_json,
    new,
    positions,
    state_of,
)


class AppendTests:
    """What an accepted append writes, and how it reads back."""

    def test_append_one_event(self, store: eb.EventStore) -> None:
        assert state_of(store) == (0, [])
        result = store.append([new("account-1", "Opened", {"owner": "ann"})])
        assert (result.first_position, result.last_position) == (1, 1)
        assert result.versions == {"account-1": 1}
        assert result.commit_id is None
        [event] = store.read_all()
        assert (event.position, event.stream, event.version) == (1, "account-1", 1)
        assert (event.type, event.data, event.metadata) == ("Opened", {"owner": "ann"}, {})
        assert event.schema_version == 1 and event.commit_id is None
        assert store.stream_version("account-1") == 1
        assert state_of(store) == (1, [eb.StreamInfo("account-1", 1, 1)])

    def test_append_many_streams_in_one_commit(self, store: eb.EventStore) -> None:
        store.append([new("a-1")])
        result = store.append(
            [
                new("a-1", "X", {"n": 1}),
                new("b-1", "X", {"n": 2}),
                new("a-1", "X", {"n": 3}),
                new("c-1", "Y", {"n": 4}),
            ],
            commit_id="multi-1",
        )
        assert (result.first_position, result.last_position) == (2, 5)
        assert result.versions == {"a-1": 3, "b-1": 1, "c-1": 1}
        assert result.commit_id == "multi-1"
        events = list(store.read_all(after=1))
        assert [(e.position, e.stream, e.version, e.data["n"]) for e in events] == [
            (2, "a-1", 2, 1),
            (3, "b-1", 1, 2),
            (4, "a-1", 3, 3),
            (5, "c-1", 1, 4),
        ]
        assert {e.commit_id for e in events} == {"multi-1"}
        assert len({e.recorded_at for e in events}) == 1, "one commit is recorded at one time"
        if result.recorded_at is not None:
            assert result.recorded_at == events[0].recorded_at
        assert list(store.streams()) == [
            eb.StreamInfo("a-1", 3, 4),
            eb.StreamInfo("b-1", 1, 3),
            eb.StreamInfo("c-1", 1, 5),
        ]

    def test_positions_start_at_one_and_have_no_gap(self, store: eb.EventStore) -> None:
        expected_first = 1
        for size in [1, 3, 1, 7, 2, 1, 5]:
            result = store.append([new(f"s-{i % 3}") for i in range(size)])
            assert result.first_position == expected_first
            assert result.last_position == expected_first + size - 1
            expected_first += size
        assert positions(store.read_all()) == list(range(1, expected_first))
        assert store.head_position() == expected_first - 1

    def test_recorded_at_is_now_and_never_decreases(self, store: eb.EventStore) -> None:
        before = datetime.now(UTC)
        for i in range(40):
            store.append([new(f"s-{i % 4}") for _ in range(1 + i % 3)])
        after = datetime.now(UTC)
        times = [e.recorded_at for e in store.read_all()]
        assert all(t.utcoffset() is not None for t in times), "recorded_at is time-zone aware"
        assert times == sorted(times), "recorded_at never decreases along positions"
        slack = timedelta(seconds=60)
        assert before - slack <= times[0] and times[-1] <= after + slack

    def test_occurred_at_defaults_to_recorded_at(self, store: eb.EventStore) -> None:
        store.append([new("s-1"), new("s-2")])
        for event in store.read_all():
            assert event.occurred_at == event.recorded_at

    @pytest.mark.parametrize(
        "occurred_at",
        [
            datetime(
                2024, 2, 29, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))
            ),
            datetime(2023, 7, 1, 2, 0, tzinfo=timezone(timedelta(hours=-7))),
            datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        ],
        ids=["plus-0530", "minus-07", "before-1970"],
    )
    def test_occurred_at_is_kept(self, store: eb.EventStore, occurred_at: datetime) -> None:
        store.append([new("s-1", occurred_at=occurred_at), new("s-1")])
        given, defaulted = store.read_all()
        assert given.occurred_at == occurred_at, "the same instant"
        assert given.occurred_at.utcoffset() is not None
        assert given.recorded_at != given.occurred_at
        assert defaulted.occurred_at == defaulted.recorded_at

    def test_data_and_metadata_round_trip(self, store: eb.EventStore) -> None:
        store.append([new("s-1", data=ROUND_TRIP_DATA, metadata=ROUND_TRIP_DATA)])
        [event] = store.read_stream("s-1")
        assert_same_json(event.data, ROUND_TRIP_DATA)
        assert_same_json(event.metadata, ROUND_TRIP_DATA)

    def test_schema_version_is_kept(self, store: eb.EventStore) -> None:
        store.append([new("s-1", schema_version=7), new("s-1")])
        assert [e.schema_version for e in store.read_stream("s-1")] == [7, 1]

    def test_event_ids_are_unique_and_given_ids_kept(self, store: eb.EventStore) -> None:
        store.append([new("s-1") for _ in range(20)])
        store.append([new("s-2", id="evt-0001"), new("s-2")])
        store.append([new("s-3") for _ in range(20)])
        ids = [e.id for e in store.read_all()]
        assert all(isinstance(i, str) and i for i in ids)
        assert len(set(ids)) == len(ids), "every event gets its own id"
        assert ids[20] == "evt-0001"

    def test_typed_events(self, store: eb.EventStore) -> None:
        deposited = Deposited(amount=5, memo="rent")
        store.append(
            [
                eb.NewEvent.of("account-1", deposited),
                eb.NewEvent.of("account-1", Withdrawn(amount=2)),
            ]
        )
        first, second = store.read_stream("account-1")
        assert (first.type, first.schema_version) == ("Deposited", 2)
        assert first.data == {"amount": 5, "memo": "rent"}
        assert first.as_(Deposited) == deposited
        assert second.as_(Withdrawn) == Withdrawn(amount=2)
        with pytest.raises(eb.InvalidInput, match="Deposited"):
            first.as_(Withdrawn)

    def test_append_takes_any_iterable_of_events(self, store: eb.EventStore) -> None:
        store.append(new("s-1") for _ in range(2))
        store.append((new("s-1"),))
        assert store.stream_version("s-1") == 3

    def test_stream_ids_are_exact(self, store: eb.EventStore) -> None:
        composed = unicodedata.normalize("NFC", "café-1")
        decomposed = unicodedata.normalize("NFD", "café-1")
        names = [
            "account-1",
            "Account-1",
            "ACCOUNT-1",
            "account-10",
            "account-1-1",
            "account",
            "a b",
            "a  b",
            composed,
            decomposed,
        ]
        for i, name in enumerate(names):
            store.append([new(name, data={"i": i})])
        for i, name in enumerate(names):
            assert [(e.stream, e.data["i"]) for e in store.read_stream(name)] == [(name, i)]
            assert store.stream_version(name) == 1
        assert [s.stream for s in store.streams()] == sorted(names)

    def test_streams_are_ordered_by_stream_id(self, store: eb.EventStore) -> None:
        names = ["b-1", "B-1", "a-2", "é-1", "z-1", "a-10", "Z-1", "😀-1", "a-1"]
        for name in names:
            store.append([new(name), new(name)])
        infos = list(store.streams())
        assert [s.stream for s in infos] == sorted(names), "code point order"
        assert all(s.version == 2 for s in infos)
        assert sorted(s.last_position for s in infos) == list(range(2, 2 * len(names) + 1, 2))
