"""Expected versions: each form against a stream with and without events, one wrong stream
stopping a whole commit, and versions counted within a commit."""

from __future__ import annotations

from typing import Any

import pytest

import eventbook as eb
from eventbook.testing.conformance.helpers import new, state_of, versions

# Expected-version table: (events already in the target stream, expected, accepted?).
EXPECTED_TABLE = [
    (0, eb.ANY, True),
    (0, eb.NO_STREAM, True),
    (0, eb.EXISTS, False),
    (0, 0, True),
    (0, 1, False),
    (2, eb.ANY, True),
    (2, eb.NO_STREAM, False),
    (2, eb.EXISTS, True),
    (2, 0, False),
    (2, 1, False),
    (2, 2, True),
    (2, 3, False),
]


class ExpectedVersionTests:
    """Appends guarded by expected versions: accepted or refused with WrongExpectedVersion."""

    @pytest.mark.parametrize("writes_target", [True, False], ids=["written", "not-written"])
    @pytest.mark.parametrize(
        ("existing", "expected", "accepted"),
        EXPECTED_TABLE,
        ids=[f"at-{n}-expect-{e!r}" for n, e, _ in EXPECTED_TABLE],
    )
    def test_expected_version(
        self,
        store: eb.EventStore,
        existing: int,
        expected: Any,
        accepted: bool,
        writes_target: bool,
    ) -> None:
        target = "target-1"
        if existing:
            store.append([new(target) for _ in range(existing)])
        store.append([new("bystander-1")])
        before = state_of(store)
        events = [new(target if writes_target else "other-1", "Checked")]
        if accepted:
            result = store.append(events, expected={target: expected})
            assert result.first_position == before[0] + 1
            assert store.stream_version(target) == existing + writes_target
            assert (target in result.versions) == writes_target
            return
        with pytest.raises(eb.WrongExpectedVersion) as info:
            store.append(events, expected={target: expected})
        error = info.value
        assert (error.stream, error.actual) == (target, existing)
        assert error.expected == expected and type(error.expected) is type(expected)
        assert isinstance(error, eb.EventbookError)
        assert state_of(store) == before, "a refused commit writes nothing"

    def test_one_wrong_stream_stops_the_whole_commit(self, store: eb.EventStore) -> None:
        store.append([new("a-1"), new("b-1")])
        before = state_of(store)
        with pytest.raises(eb.WrongExpectedVersion) as info:
            store.append(
                [new("a-1"), new("c-1"), new("b-1")],
                expected={"a-1": 1, "c-1": eb.NO_STREAM, "b-1": eb.NO_STREAM},
            )
        assert (info.value.stream, info.value.actual) == ("b-1", 1)
        with pytest.raises(eb.WrongExpectedVersion) as info:
            store.append([new("a-1"), new("c-1")], expected={"a-1": 1, "guard-1": eb.EXISTS})
        assert (info.value.stream, info.value.actual) == ("guard-1", 0)
        assert state_of(store) == before
        assert list(store.read_stream("c-1")) == []
        result = store.append([new("c-1")], expected={"c-1": eb.NO_STREAM, "a-1": 1})
        assert result.first_position == before[0] + 1, "a refused commit uses no position"

    def test_expected_version_counts_events_of_the_same_commit(self, store: eb.EventStore) -> None:
        result = store.append([new("a-1"), new("a-1"), new("a-1")], expected={"a-1": 0})
        assert result.versions == {"a-1": 3}
        assert versions(store.read_stream("a-1")) == [1, 2, 3]
        store.append([new("a-1")], expected={"a-1": 3})
        assert store.stream_version("a-1") == 4
