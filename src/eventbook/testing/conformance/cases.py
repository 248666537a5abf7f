"""Tables of input: what `append` must refuse before writing anything (`BAD_APPENDS`), what
it must accept at the edge of the limits (`GOOD_EDGES`), and models of the JSON and stream id
rules (`json_ok`, `stream_id_ok`) that generated input is checked against."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

import eventbook as eb
from eventbook import limits
from eventbook.testing.conformance.helpers import ROUND_TRIP_DATA, new


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
