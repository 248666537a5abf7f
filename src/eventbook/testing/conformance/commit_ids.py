"""Commit ids: a retry with the same content returns the first result and writes nothing;
the same id with other content is refused; a refused commit does not use up its id."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

import eventbook as eb
from eventbook.testing.conformance.helpers import new, state_of


class CommitIdTests:
    """Idempotent appends by commit id."""

    def test_commit_id_retry_returns_the_first_result(self, store: eb.EventStore) -> None:
        store.append([new("x-1")])
        events = [
            new("a-1", data={"n": 1}),
            new("b-1", occurred_at=datetime(2024, 1, 1, tzinfo=UTC)),
        ]
        first = store.append(
            events, expected={"a-1": eb.NO_STREAM}, commit_id="c-1", metadata={"by": "ann"}
        )
        written = list(store.read_all())
        again = store.append(
            events, expected={"a-1": eb.NO_STREAM}, commit_id="c-1", metadata={"by": "ann"}
        )
        assert again == first
        assert list(store.read_all()) == written, "a retry writes nothing"
        assert [e.commit_id for e in written[1:]] == ["c-1", "c-1"]

    def test_commit_id_retry_after_other_commits(self, store: eb.EventStore) -> None:
        events = [new("a-1", data={"n": 1})]
        first = store.append(events, expected={"a-1": eb.NO_STREAM}, commit_id="c-1")
        for i in range(5):
            store.append([new("a-1" if i % 2 else "b-1")], commit_id=f"other-{i}")
        before = state_of(store)
        # The retry's expectation no longer holds: a lost acknowledgement is retried as is.
        assert store.append(events, expected={"a-1": eb.NO_STREAM}, commit_id="c-1") == first
        assert store.append(events, commit_id="c-1") == first
        assert state_of(store) == before

    def test_commit_id_content_is_compared_by_value(self, store: eb.EventStore) -> None:
        first = store.append([new("a-1", data={"x": 1, "y": [1, 2]})], commit_id="c-1")
        before = state_of(store)
        assert store.append([new("a-1", data={"y": [1, 2], "x": 1})], commit_id="c-1") == first
        assert state_of(store) == before

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param({"data": {"n": 2}}, id="data"),
            pytest.param({"type": "Other"}, id="type"),
            pytest.param({"stream": "b-1"}, id="stream"),
            pytest.param({"metadata": {"m": 1}}, id="event-metadata"),
            pytest.param({"occurred_at": datetime(2020, 1, 1, tzinfo=UTC)}, id="occurred-at"),
            pytest.param({"id": "evt-1"}, id="event-id"),
            pytest.param({"schema_version": 2}, id="schema-version"),
            pytest.param({"extra": True}, id="extra-event"),
            pytest.param({"commit_metadata": {"by": "bob"}}, id="commit-metadata"),
        ],
    )
    def test_commit_id_reused_for_other_content(
        self, store: eb.EventStore, change: dict[str, Any]
    ) -> None:
        base = {"stream": "a-1", "type": "Happened", "data": {"n": 1}}
        first = store.append([eb.NewEvent(**base)], commit_id="c-1", metadata={"by": "ann"})
        store.append([new("z-1")])
        before = state_of(store)
        change = dict(change)
        extra = change.pop("extra", False)
        metadata = change.pop("commit_metadata", {"by": "ann"})
        events = [eb.NewEvent(**{**base, **change})] + ([new("a-1")] if extra else [])
        with pytest.raises(eb.DuplicateCommit) as info:
            store.append(events, commit_id="c-1", metadata=metadata)
        assert info.value.commit_id == "c-1"
        assert info.value.first_position == first.first_position
        assert state_of(store) == before

    def test_refused_commit_does_not_use_up_its_commit_id(self, store: eb.EventStore) -> None:
        store.append([new("a-1")])
        with pytest.raises(eb.WrongExpectedVersion):
            store.append([new("a-1", data={"n": 1})], expected={"a-1": 0}, commit_id="c-1")
        with pytest.raises(eb.InvalidInput):
            store.append([new("a-1", data={"n": math.nan})], commit_id="c-2")
        other = store.append([new("a-1", data={"n": 2})], expected={"a-1": 1}, commit_id="c-1")
        assert other.first_position == 2
        assert store.append([new("a-1", data={"n": 3})], commit_id="c-2").first_position == 3
        assert [e.commit_id for e in store.read_all()] == [None, "c-1", "c-2"]

    def test_read_commit_returns_the_commits_events(self, store: eb.EventStore) -> None:
        store.append([new("x-1")], commit_id="c-0")
        first = store.append([new("a-1", data={"n": 1}), new("b-1")], commit_id="c-1")
        store.append([new("a-1")])
        found = store.read_commit("c-1")
        assert [e.position for e in found] == [first.first_position, first.last_position]
        assert [e.stream for e in found] == ["a-1", "b-1"]
        assert all(e.commit_id == "c-1" for e in found)
        assert found == list(store.read_all(after=first.first_position - 1, limit=2))
        assert store.read_commit("c-unknown") == []

    def test_read_commit_refuses_a_bad_commit_id(self, store: eb.EventStore) -> None:
        with pytest.raises(eb.InvalidInput, match="commit id"):
            store.read_commit("has space")

    def test_system_rejection_streams_are_allowed(self, store: eb.EventStore) -> None:
        store.append([new("$rejected-a-1")])
        assert [e.stream for e in store.read_stream("$rejected-a-1")] == ["$rejected-a-1"]
        with pytest.raises(eb.InvalidInput, match="reserved"):
            store.append([new("$other-a-1")])
