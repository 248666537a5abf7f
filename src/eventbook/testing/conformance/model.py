"""A model-based test: hypothesis drives random appends (with expected versions and commit
ids), retries, reads and, for reopenable factories, reopens, and checks the store against a
plain model after every step."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

import eventbook as eb
from eventbook.testing.conformance.factories import StoreFactory
from eventbook.testing.conformance.helpers import new

# The model: a list of (stream, version, type, data), per-stream counts, commits by id.

MODEL_STREAMS = ("s-1", "s-2", "s-3")
_expected_forms = st.one_of(
    st.sampled_from([eb.ANY, eb.NO_STREAM, eb.EXISTS, "current"]), st.integers(0, 4)
)


def meets(expected: Any, actual: int) -> bool:
    if expected is eb.ANY:
        return True
    if expected is eb.NO_STREAM:
        return actual == 0
    if expected is eb.EXISTS:
        return actual > 0
    return bool(actual == expected)


class StoreModelMachine(RuleBasedStateMachine):
    factory: ClassVar[StoreFactory]
    commits = Bundle("commits")

    def __init__(self) -> None:
        super().__init__()
        self.store = self.factory.new()
        self.log: list[tuple[str, int, str, dict[str, Any]]] = []  # position = index + 1
        self.counts: dict[str, int] = {}
        self.sent: dict[str, tuple[list[eb.NewEvent], dict[str, Any], eb.AppendResult]] = {}
        self.ids = itertools.count(1)

    def teardown(self) -> None:
        self.store.close()

    @rule(
        target=commits,
        writes=st.lists(
            st.tuples(
                st.sampled_from(MODEL_STREAMS), st.sampled_from(["A", "B"]), st.integers(0, 9)
            ),
            min_size=1,
            max_size=4,
        ),
        expected=st.dictionaries(st.sampled_from(MODEL_STREAMS), _expected_forms, max_size=3),
        with_id=st.booleans(),
    )
    def append(
        self, writes: list[tuple[str, str, int]], expected: dict[str, Any], with_id: bool
    ) -> Any:
        events = [new(s, t, {"n": n}) for s, t, n in writes]
        plan = {s: self.counts.get(s, 0) if e == "current" else e for s, e in expected.items()}
        commit_id = f"c-{next(self.ids)}" if with_id else None
        failing = [s for s, e in plan.items() if not meets(e, self.counts.get(s, 0))]
        head = len(self.log)
        if failing:
            with pytest.raises(eb.WrongExpectedVersion) as info:
                self.store.append(events, expected=plan, commit_id=commit_id)
            assert info.value.stream in failing
            assert info.value.actual == self.counts.get(info.value.stream, 0)
            assert self.store.head_position() == head
            return multiple()
        result = self.store.append(events, expected=plan, commit_id=commit_id)
        assert (result.first_position, result.last_position) == (head + 1, head + len(events))
        written: dict[str, int] = {}
        for e in events:
            self.counts[e.stream] = written[e.stream] = self.counts.get(e.stream, 0) + 1
            self.log.append((e.stream, written[e.stream], e.type, e.data))
        assert result.versions == written
        if commit_id is None:
            return multiple()
        self.sent[commit_id] = (events, plan, result)
        return commit_id

    @rule(commit_id=commits)
    def retry(self, commit_id: str) -> None:
        events, plan, first = self.sent[commit_id]
        assert self.store.append(events, expected=plan, commit_id=commit_id) == first
        assert self.store.head_position() == len(self.log)

    @rule(commit_id=commits, stream=st.sampled_from(MODEL_STREAMS))
    def reuse_commit_id(self, commit_id: str, stream: str) -> None:
        events, _, first = self.sent[commit_id]
        with pytest.raises(eb.DuplicateCommit) as info:
            self.store.append([*events, new(stream, "Extra")], commit_id=commit_id)
        assert info.value.first_position == first.first_position

    @rule(
        stream=st.sampled_from((*MODEL_STREAMS, "never-1")),
        from_version=st.none() | st.integers(1, 14),
        backward=st.booleans(),
        limit=st.none() | st.integers(0, 6),
    )
    def read_stream(
        self, stream: str, from_version: int | None, backward: bool, limit: int | None
    ) -> None:
        mine = [(i + 1, *row) for i, row in enumerate(self.log) if row[0] == stream]
        if backward:
            top = len(mine) if from_version is None else min(from_version, len(mine))
            want = mine[:top][::-1]
        else:
            want = mine[(from_version or 1) - 1 :]
        want = want if limit is None else want[:limit]
        got = self.store.read_stream(
            stream, from_version=from_version, backward=backward, limit=limit
        )
        assert [(e.position, e.stream, e.version, e.type, e.data) for e in got] == want

    @rule(after=st.integers(0, 130), limit=st.none() | st.integers(0, 8))
    def read_all(self, after: int, limit: int | None) -> None:
        want = [(i + 1, *row) for i, row in enumerate(self.log)][after:]
        want = want if limit is None else want[:limit]
        got = self.store.read_all(after=after, limit=limit)
        assert [(e.position, e.stream, e.version, e.type, e.data) for e in got] == want

    @precondition(lambda self: self.factory.reopenable)
    @rule()
    def reopen(self) -> None:
        self.store = self.factory.reopen(self.store)

    @invariant()
    def counts_match(self) -> None:
        assert self.store.head_position() == len(self.log)
        for stream in (*MODEL_STREAMS, "never-1"):
            assert self.store.stream_version(stream) == self.counts.get(stream, 0)
        last = {row[0]: i + 1 for i, row in enumerate(self.log)}
        assert list(self.store.streams()) == [
            eb.StreamInfo(s, self.counts[s], last[s]) for s in sorted(self.counts)
        ]


class ModelTests:
    """The store behaves like the model."""

    def test_behaves_like_the_model(self, store_factory: StoreFactory) -> None:
        machine = type("StoreModelMachine", (StoreModelMachine,), {"factory": store_factory})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=30,
                stateful_step_count=30,
                deadline=None,
                print_blob=True,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
