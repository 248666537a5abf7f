"""The store contract as tests: one suite, run unchanged against every backend.

A backend's test module subclasses `StoreContract` (or `DurableStoreContract` when its stores
can be closed and opened again) and supplies a `store_factory` fixture. The suite uses only
the public API (`import eventbook as eb`) and `eventbook.limits`; it never imports a backend.

Sections: append; expected versions; commit ids; reads; subscriptions; input refused before
anything is written; concurrency; a model-based (stateful hypothesis) test; reopen
(DurableStoreContract only). Pin a known bug of the shared port with xfail(strict=True, raises=...)
on its case, never a skip: it fails loudly the day the bug is fixed, and the mark goes with the fix.
"""

from __future__ import annotations

import itertools
import math
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, example, given, settings
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
from eventbook import limits

# --------------------------------------------------------------------------------------------
# Factories: how the suite gets stores.


class StoreFactory:
    """Makes the stores the suite tests: `new()` gives a fresh, empty, open store.

    `reopenable` says whether `reopen(store)` can close a store and open the same data again;
    `memory://` cannot, so its factory is a plain `StoreFactory`. The suite closes every store
    a factory made (`close_all`) when a test ends.
    """

    reopenable: ClassVar[bool] = False

    def __init__(self, open_new: Callable[[], eb.EventStore]) -> None:
        self._open_new = open_new
        self._opened: list[eb.EventStore] = []

    def new(self) -> eb.EventStore:
        store = self._open_new()
        self._opened.append(store)
        return store

    def reopen(self, store: eb.EventStore) -> eb.EventStore:
        raise NotImplementedError(
            f"{type(self).__name__} cannot reopen a store; use PathStoreFactory (or another "
            "factory with reopenable = True) for stores that keep their data"
        )

    def close_all(self) -> None:
        while self._opened:
            self._opened.pop().close()


class PathStoreFactory(StoreFactory):
    """Stores in fresh directories under `base`, opened with `open_path(path)`;
    `reopen` closes a store and opens its path again."""

    reopenable: ClassVar[bool] = True

    def __init__(
        self,
        base: Path | str,
        open_path: Callable[[Path], eb.EventStore] = eb.open_store,
    ) -> None:
        super().__init__(self._open_fresh)
        self._base = Path(base)
        self._open_path = open_path
        self._paths: dict[int, Path] = {}  # id(store) -> path; _opened keeps the stores alive

    def _open_fresh(self) -> eb.EventStore:
        path = Path(tempfile.mkdtemp(prefix="store-", dir=self._base)) / "store"
        store = self._open_path(path)
        self._paths[id(store)] = path
        return store

    def reopen(self, store: eb.EventStore) -> eb.EventStore:
        path = self._paths.pop(id(store))
        store.close()
        again = self._open_path(path)
        self._opened.append(again)
        self._paths[id(again)] = path
        return again


# --------------------------------------------------------------------------------------------
# Helpers.


class Deposited(eb.Event, tag="Deposited"):
    schema_version: ClassVar[int] = 2
    amount: int
    memo: str = ""


class Withdrawn(eb.Event, tag="Withdrawn"):
    amount: int


def new(
    stream: str = "s-1", type: str = "Happened", data: Any = None, **fields: Any
) -> eb.NewEvent:
    return eb.NewEvent(stream, type, {} if data is None else data, **fields)


def state_of(store: eb.EventStore) -> tuple[int, list[eb.StreamInfo]]:
    """What must not change when an append is refused."""
    return store.head_position(), list(store.streams())


def positions(events: Any) -> list[int]:
    return [e.position for e in events]


def versions(events: Any) -> list[int]:
    return [e.version for e in events]


def assert_same_json(got: Any, want: Any, where: str = "$") -> None:
    """Equal and of the same JSON kinds (True is not 1, 1.0 is not 1)."""
    assert type(got) is type(want), f"at {where}: got {got!r}, want {want!r}"
    if isinstance(want, dict):
        assert set(got) == set(want), f"at {where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same_json(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"at {where}: {len(got)} items, want {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_json(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"at {where}: got {got!r}, want {want!r}"


def run_in_threads(count: int, target: Callable[[int], Any], timeout: float = 60.0) -> list[Any]:
    """Run target(0..count-1) on threads; each outcome is its return value or the exception."""
    outcomes: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            outcomes[i] = target(i)
        except BaseException as error:
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout}s"
    return outcomes


class Consumer:
    """Iterates a subscription on a thread, collecting what it delivers."""

    def __init__(self, sub: eb.Subscription, stop_at: int | None = None) -> None:
        self.sub = sub
        self.stop_at = stop_at
        self.got: list[eb.RecordedEvent] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.sub:
                self.got.append(event)
                if self.stop_at is not None and event.position >= self.stop_at:
                    return
        except BaseException as error:
            self.error = error

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(self.got) >= count, f"subscription delivered {len(self.got)} of {count}"

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"subscription still iterating after {timeout}s"


# Model of the JSON rule: what every backend must accept (and give back exactly).
def json_ok(value: Any, depth: int = 0) -> bool:
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is int:
        return limits.data_int_min <= value <= limits.data_int_max
    if kind is float:
        return math.isfinite(value)
    if kind is str:
        return "\x00" not in value
    if kind in (list, dict) and depth >= limits.data_depth_max:
        return False
    if kind is list:
        return all(json_ok(item, depth + 1) for item in value)
    if kind is dict:
        return all(
            type(k) is str and "\x00" not in k and json_ok(v, depth + 1) for k, v in value.items()
        )
    return False


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# Model of the stream id rule.
def stream_id_ok(stream: str) -> bool:
    try:
        encoded = stream.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return (
        0 < len(encoded) <= limits.stream_id_bytes_max
        and not _CONTROL.search(stream)
        and stream == stream.strip()
        and not stream.startswith("$")
    )


def nested(depth: int) -> dict[str, Any]:
    """A JSON object with `depth` levels of objects (the top one included)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


ROUND_TRIP_DATA: dict[str, Any] = {
    "text": "plain",
    "unicode": "añ 中文 ☃ 😀 e\u0301 \u05e9\u05dc\u05d5\u05dd \u200b\ufeff",
    "empty_text": "",
    "int_max": 2**63 - 1,
    "int_min": -(2**63),
    "zero": 0,
    "floats": [0.1, -2.5, 1e308, 5e-324, 2.0, 123456.789],
    "bools": [True, False],
    "null": None,
    "empty_list": [],
    "empty_object": {},
    "nested": {"a": [1, {"b": [2, [3, {"c": "deep"}]]}], "ключ": {"🔑": "value"}},
    "key with spaces and . $ dots": 1,
}

# --------------------------------------------------------------------------------------------
# Input that must be refused (with InvalidInput, a message matching `match`) before anything
# is written. Each case builds the append's arguments; per-event cases put a valid event first,
# so a store that writes event by event would be caught.


def _event_case(case_id: str, match: str, *marks: Any, **fields: Any) -> Any:
    fields.setdefault("stream", "ok-1")
    fields.setdefault("type", "Happened")

    def build() -> dict[str, Any]:
        return {"events": [new("ok-1"), eb.NewEvent(**fields)]}

    return pytest.param(build, match, id=case_id, marks=marks)


def _call_case(case_id: str, match: str, *marks: Any, **arguments: Any) -> Any:
    arguments.setdefault("events", [new("ok-1")])

    def build() -> dict[str, Any]:
        return dict(arguments)

    return pytest.param(build, match, id=case_id, marks=marks)


def _too_many_events() -> dict[str, Any]:
    return {"events": [new("ok-1") for _ in range(limits.append_batch_count_max + 1)]}


def _commit_too_big() -> dict[str, Any]:
    blob = "x" * (limits.event_data_bytes_max - 64)
    count = limits.commit_bytes_max // len(blob) + 1
    return {"events": [new("ok-1", data={"blob": blob}) for _ in range(count)]}


_STREAM_CASES = [
    ("empty", ""),
    ("too-long", "x" * (limits.stream_id_bytes_max + 1)),
    ("too-long-in-utf8-bytes", "é" * (limits.stream_id_bytes_max // 2 + 1)),
    ("newline", "a\nb"),
    ("tab", "a\tb"),
    ("nul", "a\x00b"),
    ("del", "a\x7fb"),
    ("c1-control", "a\x85b"),
    ("leading-space", " a-1"),
    ("trailing-space", "a-1 "),
    ("trailing-ideographic-space", "a-1\u3000"),
    ("dollar", "$all"),
    ("dollar-category", "$ce-account"),
    ("lone-surrogate", "a\ud800b"),
]
_NON_STR_STREAMS = [("int", 42), ("none", None), ("bytes", b"a-1")]
_UNHASHABLE_NAMES = [("list", ["a-1"]), ("dict", {"a": 1})]
_TYPE_CASES = [
    ("empty", ""),
    ("digit-first", "1Deposited"),
    ("space", "Deposited now"),
    ("too-long", "D" * (limits.type_name_chars_max + 1)),
    ("slash", "bank/Deposited"),
    ("newline", "Deposited\n"),
    ("non-ascii", "Dépôt"),
    ("int", 7),
    ("none", None),
]
_EXPECTED_FORMS = [
    ("sometimes", "sometimes"),
    ("minus-one", -1),
    ("true", True),
    ("false", False),
    ("float", 1.5),
    ("none", None),
    ("minus-one-text", "-1"),
    ("list", [1]),
]
_BAD_VALUES = [
    ("set", {1, 2}, "set"),
    ("frozenset", frozenset({1}), "frozenset"),
    ("bytes", b"ab", "bytes"),
    ("datetime", datetime(2024, 1, 1, tzinfo=UTC), "datetime"),
    ("date", date(2024, 1, 1), "date"),
    ("decimal", Decimal("1.5"), "Decimal"),
    ("object", object(), "object"),
    ("nan", math.nan, "NaN"),
    ("inf", math.inf, "inf"),
    ("minus-inf", -math.inf, "inf"),
    ("nan-in-list", [1.0, math.nan], "NaN"),
    ("nul-in-text", "a\x00b", "NUL"),
    ("int-above-int64", 2**63, "64-bit"),
    ("int-below-int64", -(2**63) - 1, "64-bit"),
    ("big-int-nested", {"x": [2**64]}, "64-bit"),
]
_BAD_KEYS = [("int-key", {1: "a"}), ("none-key", {None: 1}), ("tuple-key", {("a",): 1})]

BAD_APPENDS = [
    *(_event_case(f"stream-{name}", "stream id", stream=value) for name, value in _STREAM_CASES),
    *(_event_case(f"stream-{name}", "stream id", stream=value) for name, value in _NON_STR_STREAMS),
    *(_event_case(f"type-{name}", "type", type=value) for name, value in _TYPE_CASES),
    *(
        _event_case(f"stream-{name}", "stream id", stream=value)
        for name, value in _UNHASHABLE_NAMES
    ),
    *(_event_case(f"type-{name}", "type", type=value) for name, value in _UNHASHABLE_NAMES),
    *(
        _call_case(f"expected-{name}", "expected version", expected={"ok-1": value})
        for name, value in _EXPECTED_FORMS
    ),
    _call_case("expected-superscript-digit", "expected version", expected={"ok-1": "²"}),
    _call_case("events-none", "list of NewEvent", events=None),
    _call_case("events-int", "list of NewEvent", events=5),
    _call_case("events-text", "list of NewEvent", events="ok-1"),
    _call_case("expected-on-unwritten-stream", "expected version", expected={"guard-1": "never"}),
    _call_case("expected-not-a-mapping", "mapping", expected=[("ok-1", 1)]),
    _call_case("expected-empty-stream-id", "stream id", expected={"": eb.ANY}),
    _call_case("expected-int-stream-id", "stream id", expected={5: eb.ANY}),
    _call_case("expected-dollar-stream-id", "stream id", expected={"$all": eb.ANY}),
    *(_event_case(f"data-{name}", match, data={"v": value}) for name, value, match in _BAD_VALUES),
    *(
        _event_case(f"metadata-{name}", match, metadata={"v": value})
        for name, value, match in _BAD_VALUES[:12]
    ),
    _event_case("data-nul-in-key", "NUL", data={"a\x00b": 1}),
    *(_event_case(f"data-{name}", "key", data=value) for name, value in _BAD_KEYS),
    _event_case("metadata-int-key", "key", metadata={1: "a"}),
    _event_case("data-too-deep", "deeper", data=nested(limits.data_depth_max + 8)),
    _event_case("data-list", "JSON object", data=[1, 2]),
    _event_case("data-none", "JSON object", data=None),
    _event_case("data-text", "JSON object", data="text"),
    _event_case("metadata-list", "JSON object", metadata=[1]),
    _event_case(
        "data-too-big", "encodes to", data={"blob": "x" * (limits.event_data_bytes_max + 1)}
    ),
    _event_case(
        "metadata-too-big",
        "metadata encodes",
        metadata={"blob": "x" * (limits.event_metadata_bytes_max + 1)},
    ),
    _event_case("data-surrogate", "data", data={"v": "a\ud800"}),
    _event_case("data-surrogate-key", "data", data={"a\udfff": 1}),
    _event_case("metadata-surrogate", "metadata", metadata={"v": "\ud800"}),
    _event_case("occurred-at-naive", "time zone", occurred_at=datetime(2024, 1, 1, 12, 0)),
    _event_case("occurred-at-text", "datetime", occurred_at="2024-01-01T00:00:00Z"),
    _event_case("occurred-at-date", "datetime", occurred_at=date(2024, 1, 1)),
    _event_case("occurred-at-int", "datetime", occurred_at=1_700_000_000),
    _event_case("event-id-empty", "id", id=""),
    _event_case("event-id-too-long", "id", id="e" * (limits.event_id_chars_max + 1)),
    _event_case("event-id-space", "id", id="has space"),
    _event_case("event-id-non-ascii", "id", id="é"),
    _event_case("event-id-int", "id", id=5),
    _event_case("schema-version-0", "schema_version", schema_version=0),
    _event_case("schema-version-negative", "schema_version", schema_version=-1),
    _event_case(
        "schema-version-too-big", "schema_version", schema_version=limits.schema_version_max + 1
    ),
    _event_case("schema-version-text", "schema_version", schema_version="1"),
    _event_case("schema-version-bool", "schema_version", schema_version=True),
    _event_case("schema-version-float", "schema_version", schema_version=1.5),
    _call_case("events-empty", "at least one", events=[]),
    _call_case("events-single-new-event", "single NewEvent", events=new("ok-1")),
    _call_case("events-dict", "NewEvent", events=[new("ok-1"), {"stream": "ok-1"}]),
    _call_case("events-text", "NewEvent", events="ok-1"),
    pytest.param(_too_many_events, "at most", id="events-too-many"),
    pytest.param(_commit_too_big, "commit", id="commit-too-big"),
    *(
        _call_case(f"commit-id-{name}", "commit id", commit_id=value)
        for name, value in [
            ("empty", ""),
            ("space", "has space"),
            ("too-long", "c" * (limits.commit_id_chars_max + 1)),
            ("non-ascii", "é"),
            ("int", 42),
            ("tab", "tab\there"),
            ("newline", "c-1\n"),
        ]
    ),
    _call_case("commit-metadata-set", "commit metadata", metadata={"v": {1}}),
    _call_case("commit-metadata-nan", "commit metadata", metadata={"v": math.nan}),
    _call_case("commit-metadata-int-key", "commit metadata", metadata={1: "a"}),
    _call_case(
        "commit-metadata-too-big",
        "commit metadata",
        metadata={"blob": "x" * (limits.commit_metadata_bytes_max + 1)},
    ),
    _call_case("commit-metadata-list", "metadata", metadata=[1]),
    _call_case("commit-metadata-text", "metadata", metadata="ab"),
]

# Input at the edge of what is allowed: accepted, and read back exactly.
GOOD_EDGES = [
    pytest.param({"stream": "a" * limits.stream_id_bytes_max}, id="stream-max-bytes"),
    pytest.param(
        {
            "stream": "é" * (limits.stream_id_bytes_max // 2)
            + "a" * (limits.stream_id_bytes_max % 2)
        },
        id="stream-max-bytes-multibyte",
    ),
    pytest.param({"stream": "account 1/with:odd.chars-é☃😀"}, id="stream-odd-chars"),
    pytest.param({"stream": "a$b"}, id="stream-dollar-inside"),
    pytest.param({"type": "D" * limits.type_name_chars_max}, id="type-max-chars"),
    pytest.param({"type": "com.example:Deposited-v2_x"}, id="type-punctuation"),
    pytest.param({"id": "e" * limits.event_id_chars_max}, id="event-id-max-chars"),
    pytest.param({"id": "".join(map(chr, range(0x21, 0x7F)))[:64]}, id="event-id-printable"),
    pytest.param({"schema_version": 1}, id="schema-version-1"),
    pytest.param({"schema_version": limits.schema_version_max}, id="schema-version-max"),
    pytest.param({"data": nested(limits.data_depth_max // 2)}, id="data-deep"),
    pytest.param({"data": {"blob": "x" * (limits.event_data_bytes_max - 64)}}, id="data-near-max"),
    pytest.param({"data": ROUND_TRIP_DATA, "metadata": ROUND_TRIP_DATA}, id="data-all-kinds"),
]

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

# read_stream on a 5-event stream: (from_version, backward, limit, versions read).
STREAM_READS = [
    (None, False, None, [1, 2, 3, 4, 5]),
    (3, False, None, [3, 4, 5]),
    (5, False, None, [5]),
    (6, False, None, []),
    (None, True, None, [5, 4, 3, 2, 1]),
    (3, True, None, [3, 2, 1]),
    (1, True, None, [1]),
    (9, True, None, [5, 4, 3, 2, 1]),
    (None, False, 2, [1, 2]),
    (2, False, 2, [2, 3]),
    (4, False, 9, [4, 5]),
    (None, True, 2, [5, 4]),
    (4, True, 2, [4, 3]),
    (None, False, 0, []),
    (None, True, 0, []),
]

# read_all on 8 events: (after, limit, positions read).
ALL_READS = [
    (0, None, [1, 2, 3, 4, 5, 6, 7, 8]),
    (3, None, [4, 5, 6, 7, 8]),
    (7, None, [8]),
    (8, None, []),
    (20, None, []),
    (0, 3, [1, 2, 3]),
    (6, 5, [7, 8]),
    (2, 1, [3]),
    (0, 0, []),
]

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


# --------------------------------------------------------------------------------------------
# The suite.


class StoreContract:
    """The store contract. Subclass it in a backend's test module and supply `store_factory`."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        raise NotImplementedError("a backend's test class must supply the store_factory fixture")

    @pytest.fixture(autouse=True)
    def _closes_stores(self, store_factory: StoreFactory) -> Iterator[None]:
        yield
        store_factory.close_all()

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> eb.EventStore:
        return store_factory.new()

    # ---- append ------------------------------------------------------------------------

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

    # ---- expected versions ------------------------------------------------------------

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

    # ---- commit ids -------------------------------------------------------------------

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

    # ---- reads ------------------------------------------------------------------------

    def _two_interleaved_streams(self, store: eb.EventStore) -> dict[int, int]:
        """a-1 gets 5 events, b-1 gets 3, interleaved; returns a-1's version -> position."""
        for i in range(5):
            store.append([new("a-1", data={"v": i + 1})] + ([new("b-1")] if i % 2 == 0 else []))
        return {e.version: e.position for e in store.read_all() if e.stream == "a-1"}

    @pytest.mark.parametrize(("from_version", "backward", "limit", "want"), STREAM_READS)
    def test_read_stream(
        self,
        store: eb.EventStore,
        from_version: int | None,
        backward: bool,
        limit: int | None,
        want: list[int],
    ) -> None:
        position_of = self._two_interleaved_streams(store)
        got = list(
            store.read_stream("a-1", from_version=from_version, backward=backward, limit=limit)
        )
        assert versions(got) == want
        assert all(e.stream == "a-1" for e in got)
        assert [e.data["v"] for e in got] == want
        assert positions(got) == [position_of[v] for v in want]

    def test_read_unknown_stream_yields_nothing(self, store: eb.EventStore) -> None:
        store.append([new("a-1")])
        assert list(store.read_stream("nobody-1")) == []
        assert list(store.read_stream("nobody-1", backward=True)) == []
        assert list(store.read_stream("a-")) == [], "no prefix match"
        assert store.stream_version("nobody-1") == 0
        assert [s.stream for s in store.streams()] == ["a-1"]

    @pytest.mark.parametrize(("after", "limit", "want"), ALL_READS)
    def test_read_all(
        self, store: eb.EventStore, after: int, limit: int | None, want: list[int]
    ) -> None:
        for i in range(4):
            store.append([new(f"s-{i}", data={"p": 2 * i + 1}), new("t-1", data={"p": 2 * i + 2})])
        got = list(store.read_all(after=after, limit=limit))
        assert positions(got) == want
        assert [e.data["p"] for e in got] == want

    def test_reads_are_lazy_iterators(self, store: eb.EventStore) -> None:
        store.append([new("s-1") for _ in range(50)])
        for it in (
            store.read_all(),
            store.read_stream("s-1"),
            store.read_stream("s-1", backward=True),
            store.streams(),
        ):
            assert isinstance(it, Iterator) and not isinstance(it, list | tuple)
        it = store.read_all()
        assert next(it).position == 1 and next(it).position == 2

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s: s.read_stream(""), id="stream-empty"),
            pytest.param(lambda s: s.read_stream("$all"), id="stream-dollar"),
            pytest.param(lambda s: s.read_stream(5), id="stream-int"),
            pytest.param(lambda s: s.read_stream(["s-1"]), id="stream-list"),
            pytest.param(lambda s: s.read_stream("s-1", from_version=0), id="from-version-0"),
            pytest.param(
                lambda s: s.read_stream("s-1", from_version=-1), id="from-version-negative"
            ),
            pytest.param(lambda s: s.read_stream("s-1", from_version=True), id="from-version-bool"),
            pytest.param(lambda s: s.read_stream("s-1", from_version="1"), id="from-version-text"),
            pytest.param(lambda s: s.read_stream("s-1", limit=-1), id="stream-limit-negative"),
            pytest.param(lambda s: s.read_stream("s-1", limit=1.5), id="stream-limit-float"),
            pytest.param(lambda s: s.read_all(after=-1), id="after-negative"),
            pytest.param(lambda s: s.read_all(after=True), id="after-bool"),
            pytest.param(lambda s: s.read_all(after="0"), id="after-text"),
            pytest.param(lambda s: s.read_all(limit=-1), id="all-limit-negative"),
            pytest.param(lambda s: s.subscribe(after=-1), id="subscribe-after-negative"),
        ],
    )
    def test_bad_read_arguments_raise_at_the_call(self, store: eb.EventStore, call: Any) -> None:
        store.append([new("s-1")])
        with pytest.raises(eb.InvalidInput):
            call(store)  # not iterated: checks happen when the read is asked for

    def test_reads_across_many_pages(self, store: eb.EventStore) -> None:
        page = limits.read_page_count_max
        total = 2 * page + 37
        batch = min(limits.append_batch_count_max - 1, 3000)
        written = 0
        while written < total:
            size = min(batch, total - written)
            store.append(
                [new("big-1", data={"i": written + k + 1}) for k in range(size)] + [new("small-1")]
            )
            written += size
        commits = math.ceil(total / batch)
        forward = list(store.read_stream("big-1"))
        assert versions(forward) == list(range(1, total + 1))
        assert [e.data["i"] for e in forward] == list(range(1, total + 1))
        assert positions(forward) == sorted(positions(forward))
        assert versions(store.read_stream("big-1", backward=True)) == list(range(total, 0, -1))
        window = list(store.read_stream("big-1", from_version=page - 5, limit=page + 10))
        assert versions(window) == list(range(page - 5, 2 * page + 5))
        window = list(
            store.read_stream("big-1", from_version=page + 5, backward=True, limit=page + 2)
        )
        assert versions(window) == list(range(page + 5, 3, -1))
        assert positions(store.read_all()) == list(range(1, total + commits + 1))
        assert positions(store.read_all(after=page - 3, limit=page + 6)) == list(
            range(page - 2, 2 * page + 4)
        )
        assert eb.StreamInfo("big-1", total, total + commits - 1) in list(store.streams())

    # ---- subscriptions ----------------------------------------------------------------

    def test_subscription_catches_up_then_goes_live(self, store: eb.EventStore) -> None:
        store.append([new("a-1") for _ in range(10)])
        total = 10 + 6 * 4
        consumer = Consumer(store.subscribe(after=0, idle_timeout=10), stop_at=total)
        consumer.wait_for(10)
        for i in range(6):
            store.append([new(f"b-{i % 2}") for _ in range(4)])
            time.sleep(0.01 * (i % 3))
        consumer.join()
        assert consumer.error is None
        assert positions(consumer.got) == list(range(1, total + 1)), "each event once, in order"
        assert consumer.got == list(store.read_all())

    def test_subscription_resumes_after_a_position(self, store: eb.EventStore) -> None:
        store.append([new("a-1") for _ in range(10)])
        assert positions(store.subscribe(after=7, idle_timeout=0.2)) == [8, 9, 10]
        sub = store.subscribe(after=0)
        seen = [next(sub) for _ in range(4)]
        assert positions(seen) == [1, 2, 3, 4] and sub.position == 4
        sub.close()
        store.append([new("a-1")])
        assert positions(store.subscribe(after=sub.position, idle_timeout=0.2)) == list(
            range(5, 12)
        )

    @pytest.mark.parametrize("bad", [float("nan"), -1, "x", True, 10**9])
    def test_subscribe_refuses_a_bad_idle_timeout(self, store: eb.EventStore, bad: Any) -> None:
        with pytest.raises(eb.InvalidInput, match="idle_timeout"):
            store.subscribe(idle_timeout=bad)

    def test_subscription_ends_after_idle_timeout(self, store: eb.EventStore) -> None:
        started = time.monotonic()
        assert list(store.subscribe(idle_timeout=0.2)) == []
        waited = time.monotonic() - started
        assert 0.15 <= waited < 5.0
        store.append([new("a-1"), new("a-1")])
        assert positions(store.subscribe(after=0, idle_timeout=0.2)) == [1, 2]

    def test_idle_timeout_counts_from_the_last_event(self, store: eb.EventStore) -> None:
        consumer = Consumer(store.subscribe(after=0, idle_timeout=0.6))
        for _ in range(8):
            store.append([new("a-1")])
            time.sleep(0.1)
        consumer.join()
        assert consumer.error is None
        assert positions(consumer.got) == list(range(1, 9))

    def test_subscription_close_ends_iteration(self, store: eb.EventStore) -> None:
        store.append([new("a-1")])
        sub = store.subscribe(after=1)
        consumer = Consumer(sub)
        time.sleep(0.1)
        sub.close()
        consumer.join(5.0)
        assert consumer.error is None and consumer.got == []

    def test_subscription_close_stops_delivery_at_once(self, store: eb.EventStore) -> None:
        store.append([new("a-1") for _ in range(5)])
        sub = store.subscribe(after=0)
        assert next(sub).position == 1
        sub.close()
        assert list(sub) == []

    def test_store_close_ends_subscriptions(self, store: eb.EventStore) -> None:
        consumer = Consumer(store.subscribe(after=0))
        time.sleep(0.1)
        store.close()
        consumer.join(5.0)
        assert consumer.error is None or isinstance(consumer.error, eb.StoreClosed)
        assert consumer.got == []

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s: s.append([new("a-1")]), id="append"),
            pytest.param(lambda s: s.read_stream("a-1"), id="read_stream"),
            pytest.param(lambda s: s.read_all(), id="read_all"),
            pytest.param(lambda s: s.subscribe(), id="subscribe"),
            pytest.param(lambda s: s.stream_version("a-1"), id="stream_version"),
            pytest.param(lambda s: s.head_position(), id="head_position"),
            pytest.param(lambda s: list(s.streams()), id="streams"),
        ],
    )
    def test_closed_store_refuses_use(self, store: eb.EventStore, call: Any) -> None:
        store.append([new("a-1")])
        store.close()
        store.close()  # idempotent
        with pytest.raises(eb.StoreClosed):
            call(store)

    # ---- input refused before anything is written ---------------------------------------

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

    # ---- concurrency ------------------------------------------------------------------

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

    # ---- the model ----------------------------------------------------------------------

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


def _catch(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except BaseException as error:
        return error


# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Durability across close and reopen.


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


__all__ = ["DurableStoreContract", "PathStoreFactory", "StoreContract", "StoreFactory"]
