"""Verification by re-decision (seed 001: the state machine must be exactly reproducible).

`verify_redecide` folds the log in order and, for every commit the engine recorded, decides
its command again with the recorded `now` and seed, on the state its streams had just before
that commit, and checks that the decider yields exactly the recorded events (same streams,
types and data, in order) or the recorded rejection (same code and detail). A decider that
reads the clock, a random source of its own or the environment is caught here, and so is a
recorded event or command that was altered.

The fold uses the recorded events (not the re-decided ones), so one difference does not hide
or cause the next: each command is judged on the history as it was recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from eventbook import limits
from eventbook.audit.commits import Commit, Wrap, plain, read_commits
from eventbook.core.messages import Event
from eventbook.engine.codec import EventDecoder, UpcastError
from eventbook.engine.model import Application, Context, Rejected, placed
from eventbook.store.contract import EventStore


@dataclass(slots=True)
class Decided:
    """A command decided again: its events, its rejection, or why it could not be."""

    events: list[tuple[str, Event]] = field(default_factory=list)
    rejection: Rejected | None = None
    error: str = ""


@dataclass(frozen=True)
class Mismatch:
    """The first difference found in one recorded command."""

    position: int  # the commit's first position
    commit_id: str
    command_id: str
    command_type: str
    what: str

    def describe(self) -> str:
        return (
            f"position {self.position}, command {self.command_type} (id {self.command_id}): "
            f"{self.what}"
        )


@dataclass
class RedecideReport:
    position: int = 0  # the last position folded
    commands: int = 0  # recorded commands decided again
    matched: int = 0
    rejections: int = 0  # of the commands, recorded rejections
    unchecked: int = 0  # commits that are not commands of this application (plain appends...)
    mismatch_count: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)  # the first audit_mismatches_max

    @property
    def ok(self) -> bool:
        return self.mismatch_count == 0

    @property
    def first(self) -> Mismatch | None:
        return self.mismatches[0] if self.mismatches else None


class Folder:
    """Every stream's state, folded from recorded events in log order."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.decoder = EventDecoder(app)
        self.states: dict[str, Any] = {}
        self.versions: dict[str, int] = {}

    def decoded(self, commit: Commit) -> list[tuple[str, Event | None]]:
        """The commit's events typed (None for streams this application does not fold)."""
        out: list[tuple[str, Event | None]] = []
        for rec in commit.events:
            if self.app.decider_for(rec.stream) is None:
                out.append((rec.stream, None))
            else:
                out.append((rec.stream, self.decoder.decode(rec)))
        return out

    def fold(self, commit: Commit, events: list[tuple[str, Event | None]]) -> None:
        for rec, (stream, event) in zip(commit.events, events, strict=True):
            if event is not None:
                apply(self.app, self.states, stream, event)
                self.versions[stream] = rec.version


def apply(app: Application, states: dict[str, Any], stream: str, event: Event) -> None:
    decider = app.decider_for(stream)
    assert decider is not None
    states[stream] = decider.evolve(states.get(stream, decider.initial_state), event)


def concerns(app: Application, commit: Commit) -> bool:
    """True when the commit wrote to a stream of this application (rejections included)."""
    return any(
        app.decider_for(rec.stream.removeprefix("$rejected-")) is not None for rec in commit.events
    )


def decide_again(app: Application, commit: Commit, states: Mapping[str, Any]) -> Decided:
    """Decide the commit's recorded command again on `states`, with its recorded now and seed."""
    record = commit.command
    assert record is not None
    meta = commit.metadata
    cls = app.command_types.get(record["type"])
    if cls is None:
        return Decided(error=f"the {app.name} application has no command {record['type']!r}")
    try:
        command = msgspec.convert(record.get("data", {}), cls)
        now = datetime.fromisoformat(meta["now"])
        seed = meta["seed"]
        streams = tuple(command.streams())
    except (msgspec.ValidationError, KeyError, TypeError, ValueError) as error:
        return Decided(error=f"the recorded command cannot be read again: {error}")
    deciders = [app.decider_for(s) for s in streams]
    if not streams or None in deciders:
        return Decided(error=f"the command names streams outside the application: {streams}")
    ctx = Context(
        now,
        None,
        seed,
        str(record.get("id", "")),
        {s: states.get(s, d.initial_state) for s, d in zip(streams, deciders, strict=True)},  # type: ignore[union-attr]
    )
    try:
        decision = deciders[0].decide(command, ctx.states[streams[0]], ctx)  # type: ignore[union-attr]
        if isinstance(decision, Rejected):
            return Decided(rejection=decision)
        return Decided(events=placed(decision, streams[0]))
    except Exception as error:  # the user's decider failed on recorded input: a finding
        return Decided(error=f"decide raised {type(error).__name__}: {error}")


def difference(commit: Commit, recorded: list[tuple[str, Event | None]], got: Decided) -> str:
    """What differs between the recorded outcome and the decision again ('' when nothing)."""
    if got.error:
        return got.error
    if commit.rejected:
        data = commit.events[0].data
        code, detail = data.get("code", ""), data.get("detail", "")
        if got.rejection is None:
            return (
                f"recorded: rejected {code}; decided again: accepted ({_events_text(got.events)})"
            )
        if (got.rejection.code, got.rejection.detail) != (code, detail):
            return (
                f"recorded: rejected {code} ({detail}); decided again: rejected "
                f"{got.rejection.code} ({got.rejection.detail})"
            )
        return ""
    if got.rejection is not None:
        return f"recorded: accepted; decided again: rejected {got.rejection.code}"
    if len(got.events) != len(recorded):
        return (
            f"recorded {len(recorded)} events ({_events_text(recorded)}); decided again: "
            f"{len(got.events)} ({_events_text(got.events)})"
        )
    for i, (mine, theirs) in enumerate(zip(recorded, got.events, strict=True), start=1):
        if mine != theirs:
            return (
                f"event {i} of the commit: recorded {_event_text(*mine)}; decided again "
                f"{_event_text(*theirs)}"
            )
    return ""


def _event_text(stream: str, event: Event | None) -> str:
    if event is None:
        return f"an event in {stream} (not of this application)"
    body = msgspec.json.encode(event).decode()
    return f"{body} in {stream}"


def _events_text(events: list[tuple[str, Event]] | list[tuple[str, Event | None]]) -> str:
    return ", ".join(type(e).__name__ if e is not None else "?" for _, e in events) or "none"


def verify_redecide(app: Application, store: EventStore, wrap: Wrap = plain) -> RedecideReport:
    """Decide every recorded command again; see the module docstring."""
    report = RedecideReport()
    folder = Folder(app)
    for commit in read_commits(store, wrap=wrap):
        try:
            recorded = folder.decoded(commit)
        except UpcastError as error:
            _mismatch(report, commit, f"a recorded event cannot be read: {error.message}")
            report.position = commit.events[-1].position
            continue
        if commit.command is None or not concerns(app, commit):
            report.unchecked += 1
        else:
            report.commands += 1
            report.rejections += commit.rejected
            what = difference(commit, recorded, decide_again(app, commit, folder.states))
            if what:
                _mismatch(report, commit, what)
            else:
                report.matched += 1
        folder.fold(commit, recorded)
        report.position = commit.events[-1].position
    return report


def _mismatch(report: RedecideReport, commit: Commit, what: str) -> None:
    report.mismatch_count += 1
    if len(report.mismatches) < limits.audit_mismatches_max:
        record = commit.command or {}
        report.mismatches.append(
            Mismatch(
                commit.position,
                commit.commit_id or "",
                str(record.get("id", "")),
                str(record.get("type", "")),
                what,
            )
        )
