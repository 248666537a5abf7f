"""Folding events into state, from the nearest usable snapshot: loading and the time machine.

A target names at most one of: a stream version, a global position, a recorded time ("as we
knew it then") or an occurred time ("as it really was"). The fold starts from the latest
snapshot that lies at or before the target and was made by the same evolve code, so its cost
is bounded by the events since that snapshot.

Recorded times never decrease along positions (the store's promise), so a fold "as of" a
recorded time stops at the first later event. Occurred times may arrive in any order (late
data), so a fold "as it really was at T" starts only from a snapshot whose every event occurred
by T and then reads the rest of the stream, skipping events that occurred after T.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from eventbook.core.messages import RecordedEvent
from eventbook.core.validation import check_aware
from eventbook.engine.codec import EventDecoder, decode_state, encode_state, state_schema_version
from eventbook.engine.codec import state_hash as hash_states
from eventbook.engine.model import Application, Decider
from eventbook.errors import InvalidInput
from eventbook.store.contract import EventStore
from eventbook.store.snapshots import DAY_END_KEY, Criteria, Snapshot


@dataclass(frozen=True, slots=True)
class Target:
    """Where the time machine stops; all None means 'now'."""

    at_version: int | None = None
    at_position: int | None = None
    as_of: datetime | None = None  # recorded time
    occurred_by: datetime | None = None  # occurred time

    def __post_init__(self) -> None:
        given = [
            n
            for n in ("at_version", "at_position", "as_of", "occurred_by")
            if getattr(self, n) is not None
        ]
        if len(given) > 1:
            raise InvalidInput(f"name at most one target, got {', '.join(given)}")
        for name in ("at_version", "at_position"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise InvalidInput(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("as_of", "occurred_by"):
            value = getattr(self, name)
            if value is not None:
                check_aware(value, what=name)

    def criteria(self) -> Criteria:
        return Criteria(
            version_max=self.at_version,
            position_max=self.at_position,
            recorded_max=self.as_of,
            occurred_max=self.occurred_by,
        )

    def past(self, rec: RecordedEvent) -> bool:
        """True once the fold has gone beyond the target (stop reading)."""
        return (self.at_position is not None and rec.position > self.at_position) or (
            self.as_of is not None and rec.recorded_at > self.as_of
        )

    def skips(self, rec: RecordedEvent) -> bool:
        return self.occurred_by is not None and rec.occurred_at > self.occurred_by


NOW = Target()


@dataclass(slots=True)
class Folded:
    """A stream's state and where it stands."""

    stream: str
    state: Any
    version: int = 0  # the version of the last event folded in (0: none)
    position: int = 0  # its global position
    recorded_at: datetime | None = None
    max_occurred_at: datetime | None = None
    snapshot: Snapshot | None = None  # the snapshot the fold started from
    folded: int = 0  # events folded after the snapshot

    def apply(self, decider: Decider, rec: RecordedEvent, event: Any) -> None:
        self.state = decider.evolve(self.state, event)
        self.version, self.position, self.recorded_at = rec.version, rec.position, rec.recorded_at
        if self.max_occurred_at is None or rec.occurred_at > self.max_occurred_at:
            self.max_occurred_at = rec.occurred_at
        self.folded += 1

    def to_snapshot(self, decider: Decider, taken_at: datetime | None) -> Snapshot:
        return Snapshot(
            key=self.stream,
            version=self.version,
            position=self.position,
            recorded_at=self.recorded_at,
            max_occurred_at=self.max_occurred_at,
            code_version=decider.version,
            schema_version=state_schema_version(decider),
            state=encode_state(self.state),
            state_hash=hash_states({self.stream: self.state}),
            taken_at=taken_at,
        )


def decider_of(app: Application, stream: str) -> Decider:
    decider = app.decider_for(stream)
    if decider is None:
        raise InvalidInput(
            f"stream {stream!r} is in no category of the {app.name} application; its streams are "
            + ", ".join(f"'{c}-…'" for c in sorted(app.by_category))
        )
    return decider


def fold_stream(
    app: Application,
    store: EventStore,
    decoder: EventDecoder,
    stream: str,
    target: Target = NOW,
    *,
    use_snapshots: bool = True,
) -> Folded:
    decider = decider_of(app, stream)
    folded = Folded(stream, decider.initial_state)
    if use_snapshots and not (target.at_version == 0 or target.at_position == 0):
        snap = store.snapshots().latest(stream, decider.version, target.criteria())
        if snap is not None:
            folded = Folded(
                stream,
                decode_state(app, decider, snap.state, snap.schema_version),
                snap.version,
                snap.position,
                snap.recorded_at,
                snap.max_occurred_at,
                snap,
            )
    limit = None
    if target.at_version is not None:
        limit = max(0, target.at_version - folded.version)
        if limit == 0:
            return folded
    for rec in store.read_stream(stream, from_version=folded.version + 1, limit=limit):
        if target.past(rec):
            break
        if target.skips(rec):
            continue
        folded.apply(decider, rec, decoder.decode(rec))
    return folded


@dataclass(slots=True)
class AppState:
    """Every stream's state at one global position (the whole application)."""

    states: dict[str, Any] = field(default_factory=dict)
    position: int = 0
    recorded_at: datetime | None = None
    max_occurred_at: datetime | None = None
    snapshot: Snapshot | None = None
    folded: int = 0

    def state_hash(self) -> str:
        return hash_states(self.states)

    def apply(self, app: Application, decoder: EventDecoder, rec: RecordedEvent) -> None:
        self.position, self.recorded_at = rec.position, rec.recorded_at
        if self.max_occurred_at is None or rec.occurred_at > self.max_occurred_at:
            self.max_occurred_at = rec.occurred_at
        decider = app.decider_for(rec.stream)
        if decider is None:
            return  # rejections and streams of other applications change no state
        state = self.states.get(rec.stream, decider.initial_state)
        self.states[rec.stream] = decider.evolve(state, decoder.decode(rec))
        self.folded += 1


def app_code_version(app: Application) -> str:
    return ",".join(f"{d.category}:{d.version}" for d in app.deciders)


def encode_app_state(app: Application, states: dict[str, Any]) -> bytes:
    body = {}
    for stream, state in states.items():
        decider = decider_of(app, stream)
        body[stream] = [state_schema_version(decider), encode_state(state)]
    return msgspec.msgpack.encode(body)


def decode_app_state(app: Application, raw: bytes) -> dict[str, Any]:
    body = msgspec.msgpack.decode(raw, type=dict[str, tuple[int, bytes]])
    return {
        stream: decode_state(app, decider_of(app, stream), blob, version)
        for stream, (version, blob) in body.items()
    }


def fold_app(
    app: Application,
    store: EventStore,
    decoder: EventDecoder,
    target: Target = NOW,
    *,
    use_snapshots: bool = True,
) -> AppState:
    """The whole application's state at a target (a position, a recorded or occurred time)."""
    if target.at_version is not None:
        raise InvalidInput(
            "a version names a point in one stream; for the whole application "
            "give a position or a time"
        )
    folded = AppState()
    if use_snapshots and target.at_position != 0:
        snap = store.snapshots().latest(DAY_END_KEY, app_code_version(app), target.criteria())
        if snap is not None:
            folded = AppState(
                decode_app_state(app, snap.state),
                snap.position,
                snap.recorded_at,
                snap.max_occurred_at,
                snap,
            )
    for rec in _log_after(store, folded.position, target):
        if target.past(rec):
            break
        if not target.skips(rec):
            folded.apply(app, decoder, rec)
    return folded


def _log_after(store: EventStore, after: int, target: Target) -> Iterator[RecordedEvent]:
    limit = None if target.at_position is None else max(0, target.at_position - after)
    return store.read_all(after=after, limit=limit)
