"""The books of one measure on one store: reports along either time, the three views of seed
000, and the advance that publishes, corrects, closes and adjusts.

    ledger = eb.Ledger(books, store)                 # its read model beside the store
    ledger.report(axis="occurred", as_known_at=S)    # by day it happened, as known at S
    ledger.live(now)                                 # (1) today so far, as received
    ledger.history(as_known_at=now)                  # (2) by day it happened, sealed when closed
    ledger.advance(now)                              # publish / correct / close / adjust
    ledger.feed()                                    # (3) the notices, as events

`advance(now)` takes the time as an argument and writes what follows from it, so the same log
and the same calls give the same notices. For a period P that ended by `now`:

1. publish P's figure as known at its end (once; a period with no event known before its
   close is never published: everything of it is an adjustment);
2. if P's figure as known at min(now, close of P) differs from the last one announced, issue a
   correction with the events recorded in between;
3. if P's close has passed, seal it: its figure as known at the close and a digest;
4. every event that arrived after its period's close is booked as an adjustment into the
   period it arrived in, linked to its own.

An advance recomputes only the figures that can have changed: periods with facts new since
the last advance, periods that ended since then (to publish) and published periods whose close
has come (to seal). A sealed period is never recomputed: a late event for it is an adjustment.
`ledger.recomputed` names the periods the last advance recomputed (tests count them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventbook import limits
from eventbook.core.messages import Event, NewEvent, RecordedEvent
from eventbook.engine import Application
from eventbook.errors import InvalidInput, StreamNotFound, WrongExpectedVersion
from eventbook.projections import ProjectionRunner
from eventbook.read_models import open_read_models
from eventbook.store.contract import EventStore
from eventbook.temporal.books import Books
from eventbook.temporal.calendar import KEY_CHARS, aware, from_micros, micros
from eventbook.temporal.notices import (
    AdjustmentBooked,
    Announced,
    BooksState,
    CorrectionIssued,
    FigurePublished,
    PeriodClosed,
    fold,
)
from eventbook.temporal.queries import BooksQueries, Figure, ReportRow


@dataclass(frozen=True)
class Live:
    """View 1: the current period along the recorded axis, as received so far. `late_*`: the
    part of it that happened in earlier periods (counted here for follow-up work)."""

    period: str
    value: int
    count: int
    late_value: int
    late_count: int
    as_known_at: datetime


@dataclass(frozen=True)
class HistoryRow:
    """View 2: one period by when it happened, as known at an instant. `status`: `open`
    (not ended), `restating` (ended: late events may still change it), `closed` (sealed:
    late events go to adjustments). `adjustments_*`: late events of closed periods booked
    into this one."""

    period: str
    value: int
    count: int
    status: str
    adjustments_value: int = 0
    adjustments_count: int = 0


class Ledger:
    """The books of one measure over one store (see the module docstring).

    `app`: the application whose upcasters lift old event data (optional). `models`: the
    read models to use (default: the store's SQLite read model)."""

    def __init__(
        self,
        books: Books,
        store: EventStore,
        *,
        app: Application | None = None,
        models: dict[str, Any] | None = None,
    ) -> None:
        self.books = books
        self.store = store
        self.calendar = books.calendar
        self._own_models = models is None
        self.models = models if models is not None else open_read_models(store, {"sqlite"})
        base = app or Application(name=books.name, deciders=[], commands=[], events=[])
        self.runner = ProjectionRunner(
            store, dataclasses.replace(base, projections=[books.projection]), self.models
        )
        model = self.models["sqlite"]
        self.queries = BooksQueries(books, model.query)
        self._state = BooksState()
        self._checked = False
        self.recomputed: list[str] = []  # the periods whose figure the last advance recomputed

    def close(self) -> None:
        if self._own_models:
            for model in {id(m): m for m in self.models.values()}.values():
                model.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def catch_up(self) -> int:
        """Bring the books' read model up to the store's head; returns the events applied."""
        applied = self.runner.catch_up([self.books.name])
        if not self._checked:
            self.queries.check_calendar()
            self._checked = True
        return applied

    # -- questions ----------------------------------------------------------------------------

    def report(self, **kwargs: Any) -> list[ReportRow]:
        """`BooksQueries.report`: by period along `axis`, as known at `as_known_at`."""
        return self.queries.report(**kwargs)

    def figure(self, **kwargs: Any) -> Figure:
        """`BooksQueries.figure`: "as it was at T, as known at S"."""
        return self.queries.figure(**kwargs)

    def live(self, now: datetime) -> Live:
        """View 1: what was received in the current period up to `now`."""
        period = self.calendar.key(aware(now, "now"))
        rows = self.queries.report(
            axis="recorded", period=self.calendar.period, as_known_at=now, start=period, end=period
        )
        value = sum(r.value for r in rows)
        count = sum(r.count for r in rows)
        early = self.queries.figure(
            occurred_until=self.calendar.start(period),
            as_known_at=now,
        )
        before = self.queries.figure(
            occurred_until=self.calendar.start(period),
            as_known_at=self.calendar.start(period),
        )
        return Live(
            period, value, count, early.value - before.value, early.count - before.count, now
        )

    def history(
        self,
        as_known_at: datetime,
        *,
        start: str | None = None,
        end: str | None = None,
    ) -> list[HistoryRow]:
        """View 2: the calendar's periods by occurrence as known at an instant; closed periods
        keep their sealed figure, and what arrived for them later shows as adjustments in
        the period it arrived in."""
        period = self.calendar.period
        occurred = {
            r.period: r
            for r in self.queries.report(
                axis="occurred", period=period, as_known_at=as_known_at, start=start, end=end
            )
        }
        booked = {
            r.period: r
            for r in self.queries.report(
                axis="recorded", period=period, as_known_at=as_known_at, start=start, end=end
            )
            if r.after_close_count
        }
        rows = []
        for key in sorted(set(occurred) | set(booked)):
            o = occurred.get(key)
            b = booked.get(key)
            rows.append(
                HistoryRow(
                    key,
                    o.value - o.after_close_value if o else 0,
                    o.count - o.after_close_count if o else 0,
                    self._status(key, as_known_at),
                    b.after_close_value if b else 0,
                    b.after_close_count if b else 0,
                )
            )
        return rows

    def _status(self, period: str, at: datetime) -> str:
        if self.calendar.closes(period) <= at:
            return "closed"
        return "restating" if self.calendar.end(period) <= at else "open"

    # -- the notices --------------------------------------------------------------------------

    def state(self) -> BooksState:
        """The fold of the books stream, read from where it was last folded."""
        after = self._state.version
        try:
            events = self.store.read_stream(self.books.stream, from_version=after + 1)
            for recorded in events:
                fold(self._state, recorded, micros)
        except StreamNotFound:
            pass
        return self._state

    def feed(self, *, after_version: int = 0) -> Iterator[RecordedEvent]:
        """View 3: every notice of these books, in order (a store stream, `books-{measure}`)."""
        try:
            yield from self.store.read_stream(self.books.stream, from_version=after_version + 1)
        except StreamNotFound:
            return

    def corrections(self) -> list[CorrectionIssued]:
        return [r.as_(CorrectionIssued) for r in self.feed() if r.type == "CorrectionIssued"]

    def advance(self, now: datetime) -> list[RecordedEvent]:
        """Publish, correct, close and adjust as `now` requires (see the module docstring);
        returns the notices written. Give `now` from a clock: it is the "as known at" of the
        corrections, so it must not run ahead of the store's own recorded times."""
        now_us = micros(aware(now, "now"))
        for _attempt in range(3):
            self.catch_up()
            state = self.state()
            work = _Advance(self, state, now_us)
            notices = work.run()
            self.recomputed = work.recomputed
            if not notices:
                return []
            try:
                return self._append(state.version, notices, now_us)
            except WrongExpectedVersion:
                self._state = BooksState()  # another ledger advanced: look again
        raise InvalidInput(f"the books {self.books.stream} kept changing while advancing")

    def _append(self, version: int, notices: list[Event], now_us: int) -> list[RecordedEvent]:
        written: list[RecordedEvent] = []
        size = limits.temporal_notices_per_commit_max
        for n in range(0, len(notices), size):
            chunk = notices[n : n + size]
            expected = version + n
            self.store.append(
                [NewEvent.of(self.books.stream, e) for e in chunk],
                expected={self.books.stream: expected},  # 0: no stream yet
                commit_id=f"{self.books.stream}:{expected + 1}",
            )
            written.extend(self.store.read_stream(self.books.stream, from_version=expected + 1))
        self.state()
        return written


class _Advance:
    """One advance's work: which notices `now` calls for, given the books' state."""

    def __init__(self, ledger: Ledger, state: BooksState, now_us: int) -> None:
        self.ledger = ledger
        self.q = ledger.queries
        self.calendar = ledger.calendar
        self.state = state
        self.now_us = now_us
        self.through = self.q.through_position(now_us)
        self.common = {
            "measure": ledger.books.measure.name,
            "advanced_at": _iso(now_us),
            "through_position": self.through,
        }
        self.notices: list[Event] = []
        self.recomputed: list[str] = []

    def run(self) -> list[Event]:
        s = self.state
        if (
            self.through <= s.through_position
            and s.advanced_us is not None
            and (self.now_us <= s.advanced_us)
        ):
            return []
        since = None
        if s.advanced_us is not None:
            since = micros(self.calendar.start(self.calendar.key(from_micros(s.advanced_us))))
        # what can have changed: published periods due to close, periods that may have ended
        # since the last advance, and periods with new facts; nothing else is looked at
        candidates = {p for p in s.announced if micros(self.calendar.closes(p)) <= self.now_us}
        candidates.update(self.q.periods_occurring(since, self.now_us))
        candidates.update(self.q.periods_of_facts(s.through_position, self.through))
        for period in sorted(candidates - set(s.sealed)):
            self._period(period)
        self._adjustments()
        return self.notices

    def _period(self, period: str) -> None:
        end_us = micros(self.calendar.end(period))
        if end_us > self.now_us:
            return  # still live: nothing is published before the period ends
        close_us = micros(self.calendar.closes(period))
        at_us = min(self.now_us, close_us)
        announced = self.state.announced.get(period)
        self.recomputed.append(period)
        current = self.q.period_figure(period, at_us)
        if announced is None:
            if current.count == 0:
                return  # nothing known before its close: all of it is adjustments
            first = self.q.period_figure(period, end_us)
            self.notices.append(
                FigurePublished(
                    period=period,
                    value=first.value,
                    count=first.count,
                    as_known_at=_iso(end_us),
                    **self.common,
                )
            )
            announced = Announced(first.value, first.count, end_us)
        if (current.value, current.count) != (announced.value, announced.count):
            ids, positions, count = self.q.causes(period, announced.as_known_at_us, at_us)
            self.notices.append(
                CorrectionIssued(
                    period=period,
                    old=announced.value,
                    new=current.value,
                    old_count=announced.count,
                    new_count=current.count,
                    causes=ids,
                    cause_positions=positions,
                    causes_count=count,
                    as_known_at=_iso(at_us),
                    **self.common,
                )
            )
        if close_us <= self.now_us:
            self.notices.append(
                PeriodClosed(
                    period=period,
                    value=current.value,
                    count=current.count,
                    digest=self.q.digest(period, close_us),
                    as_known_at=_iso(close_us),
                    **self.common,
                )
            )

    def _adjustments(self) -> None:
        n = KEY_CHARS[self.calendar.period]
        groups: dict[tuple[str, str], list[Any]] = {}
        for position, event_id, occ, recorded_us, value in self.q.after_close_facts(
            self.state.through_position, self.through
        ):
            into = self.calendar.key(from_micros(recorded_us))
            group = groups.setdefault((into, occ[:n]), [0, 0, [], [], recorded_us])
            group[0] += value
            group[1] += 1
            if len(group[2]) < limits.temporal_causes_max:
                group[2].append(event_id)
                group[3].append(position)
            group[4] = max(group[4], recorded_us)
        for (into, belongs), (value, count, ids, positions, last_us) in sorted(groups.items()):
            self.notices.append(
                AdjustmentBooked(
                    period=into,
                    belongs_to=belongs,
                    value=value,
                    count=count,
                    causes=ids,
                    cause_positions=positions,
                    causes_count=count,
                    as_known_at=_iso(last_us),
                    **self.common,
                )
            )


def _iso(us: int) -> str:
    return from_micros(us).astimezone(UTC).isoformat()
