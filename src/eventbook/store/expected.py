"""Expected versions: what a commit requires of a stream before it may write.

A stream's version is the number of events in it (the first event has version 1), so an
exact expected version N means "the stream has exactly N events"; 0 is the same as NO_STREAM.
"""

from __future__ import annotations

from typing import Final

from eventbook.errors import InvalidInput, WrongExpectedVersion


class ExpectedState:
    """One of the named expectations ANY, NO_STREAM and EXISTS."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> str:
        return {"any": "ANY", "no-stream": "NO_STREAM", "exists": "EXISTS"}[self.name]


ANY: Final = ExpectedState("any")
NO_STREAM: Final = ExpectedState("no-stream")
EXISTS: Final = ExpectedState("exists")

Expected = ExpectedState | int

EXPECTED_RULE = "ANY, NO_STREAM, EXISTS or an exact version (an integer >= 0)"
_BY_NAME = {"any": ANY, "no-stream": NO_STREAM, "no_stream": NO_STREAM, "exists": EXISTS}


def parse_expected(value: object, *, stream: str = "") -> Expected:
    """Accept the sentinels, an int >= 0, or their text forms ('any', 'no-stream', '3')."""
    if isinstance(value, ExpectedState):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _BY_NAME:
            return _BY_NAME[text]
        if text.isascii() and text.isdigit():
            return int(text)
    where = f" for stream {stream!r}" if stream else ""
    raise InvalidInput(f"expected version {value!r}{where} is not understood; use {EXPECTED_RULE}")


def check_expected(stream: str, expected: Expected, actual: int) -> None:
    """Raise WrongExpectedVersion unless a stream at version `actual` meets `expected`."""
    if expected is ANY:
        return
    if expected is NO_STREAM:
        ok = actual == 0
    elif expected is EXISTS:
        ok = actual > 0
    else:
        ok = actual == expected
    if not ok:
        raise WrongExpectedVersion(stream, expected, actual)
