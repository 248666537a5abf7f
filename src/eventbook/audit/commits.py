"""The log read as commits: the events one append wrote, with the command and audit fields.

A commit's events are contiguous in the global order and share one commit id; the engine's
commits are `cmd:{command id}` and carry, in each event's metadata, the command (type, id,
data), the clock reading `now`, the seed, and the caller's audit fields (actor, reason,
correlation and causation ids). Events appended without a commit id are commits of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from eventbook.core.messages import RecordedEvent
from eventbook.engine.model import REJECTED_PREFIX
from eventbook.store.contract import EventStore

Wrap = Callable[[Iterable[RecordedEvent], int], Iterator[RecordedEvent]]

CORRECTION_KEY = "correction"  # metadata of events booked by what-if --book


def plain(events: Iterable[RecordedEvent], total: int) -> Iterator[RecordedEvent]:
    return iter(events)


@dataclass(slots=True)
class Commit:
    """The events of one commit, in order."""

    events: list[RecordedEvent]

    @property
    def position(self) -> int:
        return self.events[0].position

    @property
    def positions(self) -> list[int]:
        return [e.position for e in self.events]

    @property
    def commit_id(self) -> str | None:
        return self.events[0].commit_id

    @property
    def metadata(self) -> dict[str, Any]:
        return self.events[0].metadata

    @property
    def command(self) -> dict[str, Any] | None:
        """The recorded command {type, id, data}, or None for a plain append."""
        found = self.metadata.get("command")
        if isinstance(found, dict) and isinstance(found.get("type"), str):
            return found
        return None

    @property
    def rejected(self) -> bool:
        """True for the NOP commit that records a rejected command."""
        first = self.events[0]
        return first.stream.startswith(REJECTED_PREFIX) and first.type == "CommandRejected"

    @property
    def correction(self) -> bool:
        """True for a correction booked by what-if --book."""
        return isinstance(self.metadata.get(CORRECTION_KEY), dict)

    @property
    def outcome(self) -> str:
        if self.correction:
            return "correction"
        if self.command is None:
            return "appended"
        return "rejected" if self.rejected else "accepted"


def group_commits(events: Iterable[RecordedEvent]) -> Iterator[Commit]:
    """Consecutive events with one commit id, as commits."""
    current: list[RecordedEvent] = []
    for rec in events:
        if current and (rec.commit_id is None or rec.commit_id != current[0].commit_id):
            yield Commit(current)
            current = []
        current.append(rec)
    if current:
        yield Commit(current)


def read_commits(
    store: EventStore, *, after: int = 0, until: int | None = None, wrap: Wrap = plain
) -> Iterator[Commit]:
    """The commits after position `after` up to `until` (default: the head when called)."""
    head = store.head_position() if until is None else until
    total = max(0, head - after)
    return group_commits(wrap(store.read_all(after=after, limit=total), total))
