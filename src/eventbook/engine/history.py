"""A stream's history as a passbook (seed 000's 存摺): each command, its events, the state after.

Rejected commands appear in place (from `$rejected-{stream}`), changing nothing, so the
history shows every command ever tried on the stream.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventbook.core.messages import RecordedEvent
from eventbook.engine.folding import decider_of
from eventbook.engine.model import REJECTED_PREFIX

if TYPE_CHECKING:
    from eventbook.engine.engine import Engine


@dataclass
class HistoryEntry:
    position: int  # the position of the entry's last event
    version: int  # the stream's version after it
    recorded_at: datetime
    occurred_at: datetime
    command: dict[str, Any]  # {"type", "id", "data"}, or {} for events not from a command
    events: list[RecordedEvent] = field(default_factory=list)
    rejection: dict[str, str] | None = None  # {"code", "detail"} for a rejected command
    state: Any = None  # the stream's state after the entry


def history(engine: Engine, stream: str) -> Iterator[HistoryEntry]:
    decider = decider_of(engine.app, stream)
    state = decider.initial_state
    version = 0
    merged = heapq.merge(
        engine.store.read_stream(stream),
        engine.store.read_stream(REJECTED_PREFIX + stream),
        key=lambda r: r.position,
    )
    entry: HistoryEntry | None = None
    for rec in merged:
        rejected = rec.stream != stream
        if entry is not None and (
            rejected or rec.commit_id is None or rec.commit_id != entry.events[-1].commit_id
        ):
            yield entry
            entry = None
        if rejected:
            yield HistoryEntry(
                rec.position,
                version,
                rec.recorded_at,
                rec.occurred_at,
                rec.metadata.get("command", {}),
                [rec],
                {"code": rec.data.get("code", ""), "detail": rec.data.get("detail", "")},
                state,
            )
            continue
        state = decider.evolve(state, engine.decoder.decode(rec))
        version = rec.version
        if entry is None:
            entry = HistoryEntry(
                rec.position,
                version,
                rec.recorded_at,
                rec.occurred_at,
                rec.metadata.get("command", {}),
            )
        entry.events.append(rec)
        entry.position, entry.version, entry.state = rec.position, version, state
    if entry is not None:
        yield entry
