"""Who asked for a command and why: the audit fields the engine records with every commit.

Beside the command itself (`command`: type, id, data), the clock reading (`now`) and the seed
(`seed`), which the engine always records, a caller may give four audit fields in `metadata`:

    actor           who issued the command (a person, a token's name, a service)
    reason          why, in words ("salary", "ticket 4711: refund")
    correlation_id  the business transaction it belongs to; without one, a command is its own
                    correlation (its command id)
    causation_id    the command or event that caused it (a saga's input, a parent command)

They go into every event's metadata, rejections included. An application says which ones it
requires with `AuditPolicy(required=("actor",))`: a command without them is refused with
`InvalidInput` before anything is read or written. Other metadata keys pass through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventbook import limits
from eventbook.errors import InvalidInput

AUDIT_FIELDS = ("actor", "reason", "correlation_id", "causation_id")
ENGINE_FIELDS = ("command", "now", "seed")  # recorded by the engine, never given by a caller

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class AuditPolicy:
    """Which audit fields every command of an application must carry (none by default)."""

    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.required, str) or not all(
            isinstance(name, str) for name in self.required
        ):
            raise InvalidInput(
                f"AuditPolicy(required=...) takes a tuple of field names, got {self.required!r}"
            )
        unknown = [name for name in self.required if name not in AUDIT_FIELDS]
        if unknown:
            raise InvalidInput(
                f"AuditPolicy cannot require {', '.join(map(repr, unknown))}: the audit fields "
                f"are {', '.join(AUDIT_FIELDS)}"
            )
        object.__setattr__(self, "required", tuple(self.required))

    def checked(self, metadata: Mapping[str, Any] | None, *, app: str) -> dict[str, Any]:
        """The metadata to record, checked: audit fields well-formed, the required ones given,
        no key the engine records itself. Raises InvalidInput naming what is wrong."""
        given = dict(metadata) if metadata else {}
        reserved = sorted(set(ENGINE_FIELDS) & set(given))
        if reserved:
            raise InvalidInput(
                "metadata keys 'command', 'now' and 'seed' are recorded by the engine; "
                f"use other names (got {reserved})"
            )
        for name in AUDIT_FIELDS:
            if given.get(name) is not None:
                check_audit_field(name, given[name])
            else:
                given.pop(name, None)
        missing = [name for name in self.required if name not in given]
        if missing:
            raise InvalidInput(
                f"the {app} application requires {' and '.join(missing)} on every command; "
                f"give {', '.join(f'metadata[{n!r}]' for n in missing)} (the CLI: "
                f"{' '.join(_flag(n) for n in missing)}); nothing was written"
            )
        return given


_FLAGS = {
    "actor": "--actor NAME",
    "reason": "--reason TEXT",
    "correlation_id": "--correlation ID",
    "causation_id": "--causation ID",
}


def _flag(name: str) -> str:
    return _FLAGS[name]


def check_audit_field(name: str, value: object) -> str:
    """An audit field's value: text of 1 to N characters without control characters (ids:
    printable ASCII without spaces, like a command id)."""
    if not isinstance(value, str):
        raise InvalidInput(f"audit field {name} must be text, got {type(value).__name__}")
    if name in ("correlation_id", "causation_id"):
        chars_max = limits.command_id_chars_max
        ok = 0 < len(value) <= chars_max and value.isascii() and value.isprintable()
        ok = ok and " " not in value
        rule = "printable ASCII characters without spaces"
    else:
        chars_max = (
            limits.audit_reason_chars_max if name == "reason" else limits.audit_actor_chars_max
        )
        ok = 0 < len(value) <= chars_max and not _CONTROL.search(value) and value == value.strip()
        rule = "characters, no control characters and no leading or trailing space"
    if not ok:
        raise InvalidInput(f"{name} {value!r} is not allowed: use 1 to {chars_max} {rule}")
    return value
