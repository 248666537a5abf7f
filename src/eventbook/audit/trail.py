"""Audit queries: the commands, who issued them, why, and the events they produced.

`audit_trail` yields one `AuditEntry` per commit, rejections included (the engine records a
rejected command as a `CommandRejected` event in `$rejected-{stream}`), filtered by any of
- a stream: the commits that wrote to it, and the rejected commands decided on it;
- an actor;
- a correlation id (a command without one is its own correlation: its command id);
- a range of recorded times [from, to).
Filters combine (all must hold). A stream query reads that stream's events and the whole
commits they belong to; the others read the log once, in constant memory, starting at the
first event recorded at or after `from` (recorded times never decrease along positions).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventbook.audit.commits import Commit, group_commits, read_commits
from eventbook.core.messages import RecordedEvent
from eventbook.core.validation import check_aware
from eventbook.engine.model import REJECTED_PREFIX
from eventbook.engine.provenance import check_audit_field
from eventbook.store.contract import EventStore


@dataclass
class AuditEntry:
    """One commit as an auditor reads it."""

    position: int  # its first event's position
    positions: list[int]
    commit_id: str | None
    recorded_at: datetime
    command: dict[str, Any] | None  # {"type", "id", "data"}; None for a plain append
    outcome: str  # accepted, rejected, appended (not through a command) or correction
    actor: str | None = None
    reason: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    rejection: dict[str, str] | None = None  # {"code", "detail"} of a rejected command
    corrects: list[str] = field(default_factory=list)  # commit ids a correction corrects
    events: list[RecordedEvent] = field(default_factory=list)

    @classmethod
    def of(cls, commit: Commit) -> AuditEntry:
        meta = commit.metadata
        command = commit.command
        first = commit.events[0]
        rejection = None
        if commit.rejected:
            rejection = {"code": first.data.get("code", ""), "detail": first.data.get("detail", "")}
        correction = meta.get("correction") if commit.correction else None
        return cls(
            position=commit.position,
            positions=commit.positions,
            commit_id=commit.commit_id,
            recorded_at=first.recorded_at,
            command=command,
            outcome=commit.outcome,
            actor=meta.get("actor"),
            reason=meta.get("reason"),
            correlation_id=correlation_of(commit),
            causation_id=meta.get("causation_id"),
            rejection=rejection,
            corrects=list(correction.get("corrects", [])) if correction else [],
            events=commit.events,
        )


def correlation_of(commit: Commit) -> str | None:
    given = commit.metadata.get("correlation_id")
    if given is not None:
        return str(given)
    command = commit.command
    return None if command is None else str(command.get("id", "")) or None


@dataclass(frozen=True)
class AuditQuery:
    stream: str | None = None
    actor: str | None = None
    correlation: str | None = None
    recorded_from: datetime | None = None  # inclusive
    recorded_to: datetime | None = None  # exclusive

    def __post_init__(self) -> None:
        if self.actor is not None:
            check_audit_field("actor", self.actor)
        if self.correlation is not None:
            check_audit_field("correlation_id", self.correlation)
        for name in ("recorded_from", "recorded_to"):
            value = getattr(self, name)
            if value is not None:
                check_aware(value, what=name.replace("recorded_", "--"))

    def matches(self, commit: Commit) -> bool:
        first = commit.events[0]
        if self.recorded_from is not None and first.recorded_at < self.recorded_from:
            return False
        if self.recorded_to is not None and first.recorded_at >= self.recorded_to:
            return False
        if self.actor is not None and commit.metadata.get("actor") != self.actor:
            return False
        return self.correlation is None or correlation_of(commit) == self.correlation


def audit_trail(store: EventStore, query: AuditQuery = AuditQuery()) -> Iterator[AuditEntry]:
    """The commits the query selects, in log order."""
    commits = _by_stream(store, query.stream) if query.stream else _by_time(store, query)
    for commit in commits:
        if query.matches(commit):
            yield AuditEntry.of(commit)


def _by_stream(store: EventStore, stream: str) -> Iterator[Commit]:
    """The whole commits that wrote to `stream` or recorded a rejection decided on it."""
    merged = heapq.merge(
        store.read_stream(stream),
        store.read_stream(REJECTED_PREFIX + stream),
        key=lambda r: r.position,
    )
    seen_last: int = 0
    for commit in group_commits(merged):
        if commit.position <= seen_last:
            continue
        if commit.commit_id is not None:
            whole = store.read_commit(commit.commit_id)
            if whole:
                commit = Commit(whole)
        seen_last = commit.events[-1].position
        yield commit


def _by_time(store: EventStore, query: AuditQuery) -> Iterator[Commit]:
    after = 0
    if query.recorded_from is not None:
        after = first_recorded_at(store, query.recorded_from) - 1
    for commit in read_commits(store, after=after):
        if query.recorded_to is not None and commit.events[0].recorded_at >= query.recorded_to:
            return  # recorded times never decrease: nothing later can match
        yield commit


def first_recorded_at(store: EventStore, t: datetime) -> int:
    """The position of the first event recorded at or after `t` (head + 1 when none was)."""
    lo, hi = 1, store.head_position() + 1  # the answer lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        found = next(store.read_all(after=mid - 1, limit=1), None)
        if found is None or found.recorded_at >= t:
            hi = mid
        else:
            lo = mid + 1
    return lo
