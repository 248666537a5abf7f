"""Fix the past by appending, never by editing (seed 000: interest was computed wrongly).

`what_if(app, store, after=P)` replays the log twice at once:
- *today*: every recorded event, folded (the state as it is);
- *corrected*: the recorded events up to position P, then every recorded command after P
  decided again by `app`'s (new) deciders, with its recorded `now` and seed, on the corrected
  state, and the events it yields folded instead of the recorded ones. Plain appends are
  folded in both; corrections booked earlier are folded only into today (the corrected
  history never needed them).
It reports each stream whose state differs, with the commands whose outcome changed.

`book_corrections` appends, for each differing stream, the events its decider's
`correct(before, after)` returns, after checking that folding them into today's state gives
exactly the corrected state: replaying old + compensation equals the corrected history. Each
correction is its own commit (expected: the stream's version today, so a concurrent change
is a conflict, nothing booked), and its metadata names the commits it corrects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from eventbook import limits
from eventbook.audit.commits import CORRECTION_KEY, Wrap, plain, read_commits
from eventbook.audit.redecision import Folder, apply, concerns, decide_again
from eventbook.core.messages import AppendResult, NewEvent
from eventbook.engine.folding import decider_of
from eventbook.engine.model import Application, placed
from eventbook.errors import InvalidInput
from eventbook.store.commit import new_event_id
from eventbook.store.contract import EventStore


@dataclass
class StreamDifference:
    stream: str
    version: int  # the stream's version today
    before: Any  # the state today
    after: Any  # the state in the corrected history
    corrects: list[str] = field(default_factory=list)  # commit ids whose outcome changed
    corrects_count: int = 0  # all of them (the list keeps the first audit_corrects_max)


@dataclass
class WhatIfReport:
    after: int  # commands after this position were decided again
    position: int = 0  # the last position read
    commands: int = 0  # commands decided again
    changed: int = 0  # of them, those whose outcome differs from the recorded one
    differences: list[StreamDifference] = field(default_factory=list)


def what_if(
    app: Application, store: EventStore, *, after: int = 0, wrap: Wrap = plain
) -> WhatIfReport:
    """How every stream would stand had `app`'s deciders decided the commands after `after`."""
    if type(after) is not int or after < 0:
        raise InvalidInput(f"--from must be a position >= 0, got {after!r}")
    report = WhatIfReport(after)
    today = Folder(app)
    corrected: dict[str, Any] = {}
    changed_by: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for commit in read_commits(store, wrap=wrap):
        recorded = today.decoded(commit)
        today.fold(commit, recorded)
        report.position = commit.events[-1].position
        if commit.correction:
            continue
        if commit.position <= after or commit.command is None or not concerns(app, commit):
            for stream, event in recorded:
                if event is not None:
                    apply(app, corrected, stream, event)
            continue
        report.commands += 1
        got = decide_again(app, commit, corrected)
        if got.error:
            raise InvalidInput(
                f"the new deciders cannot decide the command recorded at position "
                f"{commit.position} ({commit.commit_id}): {got.error}; nothing was written"
            )
        for stream, event in got.events:
            apply(app, corrected, stream, event)
        mine = [] if commit.rejected else [(s, e) for s, e in recorded if e is not None]
        if mine == got.events:
            continue
        report.changed += 1
        for stream in {s for s, _ in mine} | {s for s, _ in got.events}:
            counts[stream] = counts.get(stream, 0) + 1
            ids = changed_by.setdefault(stream, [])
            if len(ids) < limits.audit_corrects_max and commit.commit_id:
                ids.append(commit.commit_id)
    for stream in sorted(set(today.states) | set(corrected)):
        initial = decider_of(app, stream).initial_state
        before = today.states.get(stream, initial)
        now = corrected.get(stream, initial)
        if before != now:
            report.differences.append(
                StreamDifference(
                    stream,
                    today.versions.get(stream, 0),
                    before,
                    now,
                    changed_by.get(stream, []),
                    counts.get(stream, 0),
                )
            )
    return report


@dataclass(frozen=True)
class Booked:
    stream: str
    commit_id: str
    result: AppendResult


def book_corrections(
    app: Application,
    store: EventStore,
    report: WhatIfReport,
    *,
    metadata: dict[str, Any] | None = None,
) -> list[Booked]:
    """Append the compensation of every difference (checked first: nothing is written unless
    every stream's compensation reaches its corrected state)."""
    meta = app.audit.checked(metadata, app=app.name)
    planned = [(d, _compensation(app, d)) for d in report.differences]
    booked = []
    for difference, events in planned:
        commit_meta = {
            **meta,
            CORRECTION_KEY: {
                "corrects": difference.corrects,
                "corrects_count": difference.corrects_count,
                "after": report.after,
                "head": report.position,
            },
        }
        new = [
            NewEvent.of(difference.stream, e, metadata=commit_meta, id=new_event_id())
            for e in events
        ]
        key = f"{difference.stream}\x00{difference.version}\x00{report.position}"
        commit_id = "correction:" + hashlib.sha256(key.encode()).hexdigest()[:32]
        result = store.append(
            new, expected={difference.stream: difference.version}, commit_id=commit_id
        )
        booked.append(Booked(difference.stream, commit_id, result))
    return booked


def _compensation(app: Application, difference: StreamDifference) -> list[Any]:
    decider = decider_of(app, difference.stream)
    if decider.correct is None:
        raise InvalidInput(
            f"the {decider.category} decider has no correct(before, after), so the difference "
            f"in {difference.stream} cannot be booked; give eventbook.Decider a correct "
            "function that returns the compensating events; nothing was written"
        )
    pairs = placed(decider.correct(difference.before, difference.after), difference.stream)
    if any(stream != difference.stream for stream, _ in pairs):
        raise InvalidInput(
            f"correct() for {difference.stream} must return events of that stream only; "
            "nothing was written"
        )
    state = difference.before
    for _, event in pairs:
        state = decider.evolve(state, event)
    if state != difference.after:
        raise InvalidInput(
            f"correct() for {difference.stream} does not reach the corrected state: booking it "
            f"would give {state!r}, the corrected history has {difference.after!r}; "
            "nothing was written"
        )
    return [event for _, event in pairs]
