"""Checks on what callers hand to a store, made before a single byte is written.

Each check raises InvalidInput with what was wrong, where, and what is allowed.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from eventbook import limits
from eventbook.errors import InvalidInput

_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:\-]*\Z")
_ID_TEXT = re.compile(r"[\x21-\x7e]+\Z")  # printable ASCII, no spaces
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

STREAM_ID_RULE = (
    f"1 to {limits.stream_id_bytes_max} UTF-8 bytes, no control characters, no leading or "
    "trailing space, not starting with '$' (reserved for system streams)"
)

# System streams eventbook itself writes: `$rejected-{stream}` records the commands the engine
# rejected for `stream` (seed 001's NOP events). No other '$' stream id is accepted.
SYSTEM_STREAM_PREFIXES = ("$rejected-",)


def check_stream_id(stream: object, *, where: str = "stream id") -> str:
    if not isinstance(stream, str):
        raise InvalidInput(f"{where} must be a string, got {type(stream).__name__}")
    encoded = stream.encode("utf-8", "surrogatepass")
    longest = limits.stream_id_bytes_max
    if stream.startswith(SYSTEM_STREAM_PREFIXES):  # `$rejected-` + any valid stream id
        longest += len(SYSTEM_STREAM_PREFIXES[0])
    if not 0 < len(encoded) <= longest or _CONTROL.search(stream):
        raise InvalidInput(f"{where} {stream!r} is not allowed: use {STREAM_ID_RULE}")
    if stream != stream.strip() or (
        stream.startswith("$") and not stream.startswith(SYSTEM_STREAM_PREFIXES)
    ):
        raise InvalidInput(f"{where} {stream!r} is not allowed: use {STREAM_ID_RULE}")
    try:
        stream.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where} {stream!r} is not valid Unicode text") from None
    return stream


def check_type_name(name: object, *, where: str = "event type") -> str:
    if not isinstance(name, str):
        raise InvalidInput(f"{where} must be a string, got {type(name).__name__}")
    if len(name) > limits.type_name_chars_max or not _TYPE_NAME.match(name):
        raise InvalidInput(
            f"{where} {name!r} is not allowed: use a letter followed by letters, digits, "
            f"'_', '.', ':' or '-', at most {limits.type_name_chars_max} characters "
            "(a stable name such as 'Deposited', never a Python path)"
        )
    return name


def check_id_text(value: object, *, what: str, chars_max: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > chars_max or not _ID_TEXT.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not allowed: use 1 to {chars_max} printable ASCII "
            "characters without spaces"
        )
    return value


def check_aware(value: object, *, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{what} {value.isoformat()} has no time zone; give an aware datetime "
            "(for example with tzinfo=datetime.timezone.utc)"
        )
    return value


def check_json_object(value: object, *, what: str) -> dict[str, Any]:
    """A JSON object: str keys; values null, bool, int64, finite float, text, lists, objects."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object (a dict), got {type(value).__name__}")
    if not _dict_ok(value, 0):
        _check_value(value, what, "$", 0)  # the slow walk finds the spot and says what it is
        raise AssertionError("the fast and the slow JSON checks disagree")
    return value


def _text_ok(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _item_ok(item: Any, depth: int) -> bool:
    kind = type(item)
    if kind is str:
        return _text_ok(item)
    if kind is int:
        return limits.data_int_min <= item <= limits.data_int_max
    if kind is float:
        return math.isfinite(item)
    if item is None or kind is bool:
        return True
    if kind is dict:
        return _dict_ok(item, depth + 1)
    if kind is list:
        return depth + 1 < limits.data_depth_max and all(_item_ok(x, depth + 1) for x in item)
    return False


def _dict_ok(value: dict[Any, Any], depth: int) -> bool:
    """The fast check: True when `value` is a JSON object within the limits. No messages."""
    if depth >= limits.data_depth_max:
        return False
    low, high = limits.data_int_min, limits.data_int_max
    for key, item in value.items():
        if type(key) is not str or not _text_ok(key):
            return False
        kind = type(item)
        if kind is str:
            if "\x00" in item or not (item.isascii() or _text_ok(item)):
                return False
        elif kind is int:
            if not low <= item <= high:
                return False
        elif kind is float or kind is dict or kind is list:
            if not _item_ok(item, depth):
                return False
        elif item is not None and kind is not bool:
            return False
    return True


def _check_text(value: str, what: str, path: str) -> None:
    if "\x00" in value:
        raise InvalidInput(f"{what} has a NUL character in text at {path}; NUL is not allowed")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"{what} has text at {path} that is not valid Unicode (a lone surrogate)"
            ) from None


def _check_value(value: Any, what: str, path: str, depth: int) -> None:
    kind = type(value)
    if kind is str:
        _check_text(value, what, path)
        return
    if kind is int:
        if not limits.data_int_min <= value <= limits.data_int_max:
            raise InvalidInput(
                f"{what} has the integer {value} at {path}, outside the signed 64-bit range "
                "that every backend stores; encode big numbers as text"
            )
        return
    if kind is float:
        if not math.isfinite(value):
            raise InvalidInput(
                f"{what} has {value} at {path}; NaN and infinities are not JSON, use null or text"
            )
        return
    if value is None or kind is bool:
        return
    if depth >= limits.data_depth_max:
        raise InvalidInput(f"{what} nests deeper than {limits.data_depth_max} levels at {path}")
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidInput(
                    f"{what} has the key {key!r} at {path}; JSON object keys must be text"
                )
            _check_text(key, what, f"{path} (a key)")
            _check_value(item, what, f"{path}.{key}", depth + 1)
        return
    if kind is list:
        for i, item in enumerate(value):
            _check_value(item, what, f"{path}[{i}]", depth + 1)
        return
    raise InvalidInput(
        f"{what} has a {kind.__name__} at {path}; allowed are null, booleans, integers, finite "
        "floats, text, lists and objects with text keys (JSON)"
    )
