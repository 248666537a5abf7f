"""The shapes every part of eventbook speaks: events to append, recorded events, results.

`RecordedEvent` is an array-like msgspec Struct so the embedded log can decode a stored
record straight into it in one call; its field order is therefore part of the file format
(docs/file-format.md) and must only ever grow at the end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, TypeVar

import msgspec

from eventbook.errors import InvalidInput

E = TypeVar("E", bound="Event")


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """Base class for typed events.

    Subclass with an explicit, stable type name as the msgspec tag, and a schema version::

        class Deposited(eb.Event, tag="Deposited"):
            schema_version: ClassVar[int] = 1
            amount: int

    The type name is what is stored: never the Python path, so classes may move freely.
    """

    schema_version: ClassVar[int] = 1


def type_name_of(event_class: type[Event]) -> str:
    tag = event_class.__struct_config__.tag
    if not isinstance(tag, str):
        raise InvalidInput(
            f"event class {event_class.__name__} has no stable type name; declare it as "
            f'`class {event_class.__name__}(eventbook.Event, tag="{event_class.__name__}")`'
        )
    return tag


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append: which stream, what type, its data.

    `occurred_at` is when it happened in the world (defaults to when the store records it);
    `id` is an optional caller-chosen event id (a new unique one is given otherwise).
    """

    stream: str
    type: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    occurred_at: datetime | None = None
    id: str | None = None
    schema_version: int = 1

    @classmethod
    def of(
        cls,
        stream: str,
        event: Event,
        *,
        metadata: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
        id: str | None = None,
    ) -> NewEvent:
        """A NewEvent carrying a typed event, with its type name and schema version."""
        data = msgspec.to_builtins(event)
        data.pop("type", None)  # the tag field: it is already the event's type
        return cls(
            stream,
            type_name_of(type(event)),
            data,
            metadata or {},
            occurred_at,
            id,
            type(event).schema_version,
        )


class RecordedEvent(msgspec.Struct, frozen=True, array_like=True):
    """An event as the store recorded it. Field order is part of the stored format."""

    position: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime
    occurred_at: datetime
    id: str
    schema_version: int
    commit_id: str | None

    def as_(self, event_class: type[E]) -> E:
        """Decode the data into a typed event class (its tag must be this event's type)."""
        if type_name_of(event_class) != self.type:
            raise InvalidInput(
                f"event at position {self.position} is a {self.type!r}, not a "
                f"{type_name_of(event_class)!r}"
            )
        return msgspec.convert(self.data, event_class)


class AppendResult(msgspec.Struct, frozen=True):
    """What an append returns: the positions it took and each stream's new version."""

    first_position: int
    last_position: int
    versions: dict[str, int]
    commit_id: str | None = None
    recorded_at: datetime | None = None


__all__ = ["AppendResult", "Event", "NewEvent", "RecordedEvent", "type_name_of"]
