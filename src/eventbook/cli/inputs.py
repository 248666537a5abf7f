"""Parsing what a user typed into the values the Python API takes.

Every failure raises InvalidInput (exit code 2) with what was given and what is accepted.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import msgspec

from eventbook.errors import InvalidInput
from eventbook.store.expected import Expected, parse_expected

_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def parse_json_object(text: str, *, what: str) -> dict[str, Any]:
    """A JSON object given on the command line, or read from stdin when `text` is '-'."""
    if text == "-":
        text = sys.stdin.read()
    try:
        value = msgspec.json.decode(text.encode("utf-8", "surrogatepass"))
    except msgspec.DecodeError as error:
        raise InvalidInput(
            f"{what} is not valid JSON ({error}); give an object such as '{{\"amount\": 5}}' "
            "(quote it for the shell)"
        ) from None
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        raise InvalidInput(f"{what} must be a JSON object such as '{{\"amount\": 5}}', got {kind}")
    return value


def parse_time(text: str, *, what: str) -> datetime:
    """An ISO 8601 time with a time zone; a naive time is refused rather than guessed."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{what} {text!r} is not an ISO 8601 time; use for example 2024-05-01T12:00:00Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{what} {text!r} has no time zone; add Z for UTC or an offset such as +00:00 "
            f"(for example {value.isoformat()}Z)"
        )
    return value


def parse_expected_version(text: str, *, stream: str) -> Expected:
    """--expected-version: any, no-stream, exists, or an exact version N."""
    try:
        return parse_expected(text, stream=stream)
    except InvalidInput:
        raise InvalidInput(
            f"--expected-version {text!r} is not understood; use any, no-stream, exists, or a "
            "version number N >= 0 (the stream must have exactly N events; 0 = no-stream)"
        ) from None
