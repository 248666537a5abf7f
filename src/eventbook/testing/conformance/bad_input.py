"""Input refused before anything is written: the `BAD_APPENDS` table, limits accepted at
their edge, and generated JSON and stream ids either kept exactly or refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import eventbook as eb
from eventbook import limits
from eventbook.testing.conformance.cases import BAD_APPENDS, GOOD_EDGES, json_ok, stream_id_ok
from eventbook.testing.conformance.helpers import assert_same_json, new, state_of

_FAST = settings(
    max_examples=60,
    deadline=None,
    print_blob=True,
    # The store fixture is shared by the examples on purpose: every example checks its own
    # effect (or that it had none) against the store's state before it. Every backend's
    # subclass runs the same method (differing executors); sharing its example database
    # between backends is what we want: a failure found on one is replayed on the others.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)

_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=3),
    st.sets(st.integers(0, 3), max_size=2),
)
_json_keys = st.one_of(st.text(max_size=6), st.text(max_size=6), st.integers(0, 2))
_json_values = st.recursive(
    _json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_json_keys, inner, max_size=3),
    max_leaves=8,
)
_json_objects = st.dictionaries(_json_keys, _json_values, max_size=4)


class BadInputTests:
    """Refused input leaves the store as it was; accepted input reads back exactly."""

    @pytest.mark.parametrize(("build", "match"), BAD_APPENDS)
    def test_bad_input_is_refused_before_writing(
        self, store: eb.EventStore, build: Callable[[], dict[str, Any]], match: str
    ) -> None:
        store.append([new("seed-1")])
        before = state_of(store)
        with pytest.raises(eb.InvalidInput, match=match) as info:
            store.append(**build())
        assert len(str(info.value)) > 20, "the message says what is allowed"
        assert state_of(store) == before
        assert store.append([new("seed-1")]).first_position == before[0] + 1

    def test_too_many_events_with_a_smaller_limit(
        self, store: eb.EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(limits, "append_batch_count_max", 5)
        with pytest.raises(eb.InvalidInput, match="at most 5"):
            store.append([new("a-1") for _ in range(6)])
        assert state_of(store) == (0, [])
        assert store.append([new("a-1") for _ in range(5)]).last_position == 5

    @pytest.mark.parametrize("fields", GOOD_EDGES)
    def test_input_at_the_limits_is_accepted(
        self, store: eb.EventStore, fields: dict[str, Any]
    ) -> None:
        event = eb.NewEvent(**{"stream": "edge-1", "type": "Happened", **fields})
        store.append([event])
        [got] = store.read_all()
        assert (got.stream, got.type, got.schema_version) == (
            event.stream,
            event.type,
            event.schema_version,
        )
        assert_same_json(got.data, event.data)
        assert_same_json(got.metadata, event.metadata)
        if event.id is not None:
            assert got.id == event.id

    def test_commit_ids_at_the_limits_are_accepted(self, store: eb.EventStore) -> None:
        for commit_id in ["c" * limits.commit_id_chars_max, "".join(map(chr, range(0x21, 0x7F)))]:
            result = store.append([new("a-1")], commit_id=commit_id)
            assert result.commit_id == commit_id
            assert store.append([new("a-1")], commit_id=commit_id) == result
        assert [e.commit_id for e in store.read_all()] == [
            "c" * limits.commit_id_chars_max,
            "".join(map(chr, range(0x21, 0x7F))),
        ]

    @_FAST
    @given(data=_json_objects, metadata=_json_objects)
    @example(data={"v": 2**63 - 1, "w": -(2**63)}, metadata={})
    @example(data={"v": 2**63}, metadata={})
    @example(data={}, metadata={"k": [1.5, None, "é"]})
    def test_any_data_is_stored_exactly_or_refused(
        self, store: eb.EventStore, data: dict[Any, Any], metadata: dict[Any, Any]
    ) -> None:
        before = state_of(store)
        event = new("json-1", data=data, metadata=metadata)
        if not (json_ok(data) and json_ok(metadata)):
            with pytest.raises(eb.InvalidInput):
                store.append([new("json-1"), event])
            assert state_of(store) == before
            return
        result = store.append([event])
        [got] = store.read_all(after=before[0])
        assert got.position == result.first_position
        assert_same_json(got.data, data)
        assert_same_json(got.metadata, metadata)

    @_FAST
    @given(stream=st.text(max_size=70))
    @example(stream="é" * 127 + "a")
    @example(stream="é" * 128)
    @example(stream="a\u2028b")
    @example(stream="\u2028a")
    @example(stream="a\u0085")
    def test_any_stream_id_is_kept_exactly_or_refused(
        self, store: eb.EventStore, stream: str
    ) -> None:
        before = state_of(store)
        if not stream_id_ok(stream):
            with pytest.raises(eb.InvalidInput, match="stream id"):
                store.append([new("ok-1"), new(stream)])
            assert state_of(store) == before
            return
        result = store.append([new(stream)])
        [got] = store.read_stream(stream, backward=True, limit=1)
        assert (got.stream, got.position) == (stream, result.first_position)
        assert store.stream_version(stream) == result.versions[stream]
        assert stream in [s.stream for s in store.streams()]
