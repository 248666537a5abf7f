"""Checks by replay: a fresh fold of the whole log against what was saved along the way.

`verify_replay` folds every event from position 0 without snapshots and compares
- each stored stream snapshot (of the current evolve code) with the fresh state at its version,
- each day-end cut-off with the fresh whole state at its position,
- the live replica (started from the latest cut-off, as a running replica would) with the
  fresh whole state at the head.
`check_upcasting` reads the whole log through the upcasters into the application's event types
and reports what fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from eventbook.core.messages import RecordedEvent
from eventbook.engine.codec import EventDecoder, UpcastError
from eventbook.engine.codec import state_hash as hash_states
from eventbook.engine.folding import AppState, Target, app_code_version
from eventbook.engine.model import Application
from eventbook.engine.replica import Replica
from eventbook.store.contract import EventStore
from eventbook.store.snapshots import DAY_END_KEY

Wrap = Callable[[Iterable[RecordedEvent], int], Iterator[RecordedEvent]]


def _plain(events: Iterable[RecordedEvent], total: int) -> Iterator[RecordedEvent]:
    return iter(events)


@dataclass
class ReplayReport:
    position: int = 0
    events: int = 0
    state_hash: str = ""
    replica_hash: str = ""
    snapshots_checked: int = 0
    snapshots_ignored: int = 0  # made by another code version: never trusted, not checked
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def verify_replay(app: Application, store: EventStore, wrap: Wrap = _plain) -> ReplayReport:
    report = ReplayReport()
    head = store.head_position()
    streams: dict[tuple[str, int], tuple[str, int]] = {}  # (stream, version) -> (hash, position)
    day_ends: dict[int, list[tuple[str, str]]] = {}  # position -> [(label, hash)]
    code = app_code_version(app)
    for snap in store.snapshots().all():
        if snap.key == DAY_END_KEY:
            if snap.code_version == code and snap.position <= head:
                day_ends.setdefault(snap.position, []).append((snap.label, snap.state_hash))
            else:
                report.snapshots_ignored += 1
            continue
        decider = app.decider_for(snap.key)
        if decider is None or decider.version != snap.code_version or snap.position > head:
            report.snapshots_ignored += 1
            continue
        streams[(snap.key, snap.version)] = (snap.state_hash, snap.position)

    decoder = EventDecoder(app)
    fresh = AppState()
    _check_day_ends(report, day_ends, 0, fresh)
    for rec in wrap(store.read_all(limit=head), head):
        fresh.apply(app, decoder, rec)
        report.events += 1
        saved = streams.get((rec.stream, rec.version))
        if saved is not None and saved[1] == rec.position:
            report.snapshots_checked += 1
            got = hash_states({rec.stream: fresh.states[rec.stream]})
            if got != saved[0]:
                report.mismatches.append(
                    f"snapshot of {rec.stream} at version {rec.version} differs from the replay "
                    f"(stored {saved[0][:12]}…, replayed {got[:12]}…)"
                )
        if rec.position in day_ends:
            _check_day_ends(report, day_ends, rec.position, fresh)
    report.position = fresh.position
    report.state_hash = fresh.state_hash()
    replica = Replica(app, store, until=fresh.position)
    replica.catch_up()
    report.replica_hash = replica.state_hash()
    if report.replica_hash != report.state_hash:
        report.mismatches.append(
            f"the replica at position {fresh.position} differs from the replay "
            f"(replica {report.replica_hash[:12]}…, replay {report.state_hash[:12]}…)"
        )
    return report


def _check_day_ends(
    report: ReplayReport, day_ends: dict[int, list[tuple[str, str]]], position: int, at: AppState
) -> None:
    for label, saved in day_ends.get(position, []):
        report.snapshots_checked += 1
        got = at.state_hash()
        if got != saved:
            report.mismatches.append(
                f"day-end cut-off {label} (position {position}) differs from the replay "
                f"(stored {saved[:12]}…, replayed {got[:12]}…)"
            )


@dataclass
class UpcastFailure:
    type: str
    schema_version: int
    count: int
    first_position: int
    error: str


@dataclass
class UpcastReport:
    events: int = 0
    checked: int = 0
    failures: dict[tuple[str, int], UpcastFailure] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def check_upcasting(app: Application, store: EventStore, wrap: Wrap = _plain) -> UpcastReport:
    """Decode every event of the application's streams (and of its declared types) through the
    upcasters; other applications' events in a shared store are counted, not checked."""
    report = UpcastReport()
    decoder = EventDecoder(app)
    head = store.head_position()
    for rec in wrap(store.read_all(limit=head), head):
        report.events += 1
        if app.decider_for(rec.stream) is None and rec.type not in app.event_types:
            continue
        report.checked += 1
        try:
            decoder.decode(rec)
        except UpcastError as error:
            key = (rec.type, rec.schema_version)
            found = report.failures.get(key)
            if found is None:
                report.failures[key] = UpcastFailure(
                    rec.type, rec.schema_version, 1, rec.position, error.message
                )
            else:
                found.count += 1
    return report


__all__ = ["ReplayReport", "Target", "UpcastReport", "check_upcasting", "verify_replay"]
