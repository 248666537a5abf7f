"""The bitemporal picture of a set of books, as data: what `eventbook report --plot` draws.

For the calendar's periods (days, by default) from `start` to `end`, as known at an instant S:

- `first`: each period's figure as known at its end (the daily report as first published);
- `latest`: its figure as known at S, every event counted (late ones too: what happened);
- `sealed`: the figure each closed period was sealed at (`PeriodClosed`);
- `growth`: how each period's figure grew as its events were learned (knowledge time, to the
  hour: the cells' grain), a step series per period;
- `corrections` and `adjustments`: the notices, with when they were issued and old and new.

Notices count when the advance that wrote them ran by S. Everything is read from the books'
read model and their stream; drawing it is `eventbook.temporal.drawing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from eventbook import limits
from eventbook.errors import InvalidInput
from eventbook.temporal.calendar import aware, from_micros, micros
from eventbook.temporal.ledger import Ledger


@dataclass(frozen=True)
class Change:
    """A notice on the picture: a correction (`old` -> `new`) or an adjustment (`new - old` is
    its value, booked `into` a later period) of `period`, issued `at`."""

    period: str
    at: datetime
    old: int
    new: int
    into: str = ""


@dataclass
class Picture:
    measure: str
    value_name: str  # what one event adds: "sum of amount", "count of events"
    tz: str
    as_known_at: datetime
    periods: list[str]
    starts: dict[str, datetime]
    ends: dict[str, datetime]
    closes: dict[str, datetime]
    first: dict[str, int] = field(default_factory=dict)
    latest: dict[str, int] = field(default_factory=dict)
    sealed: dict[str, int] = field(default_factory=dict)
    growth: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict)
    corrections: list[Change] = field(default_factory=list)
    adjustments: list[Change] = field(default_factory=list)


def picture_of(
    ledger: Ledger,
    *,
    as_known_at: datetime | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Picture:
    """The picture of `ledger`'s books as known at `as_known_at` (default: the latest
    instant the books know of: the last event recorded or notice written), for the periods
    from `start` to `end` (default: every period with an event known by then)."""
    calendar, books = ledger.calendar, ledger.books
    at = _latest(ledger) if as_known_at is None else aware(as_known_at, "as_known_at")
    at_us = micros(at)
    rows = ledger.report(axis="occurred", period=calendar.period, as_known_at=at)
    periods = [
        r.period
        for r in rows
        if (start is None or r.period >= start) and (end is None or r.period <= end)
    ]
    if len(periods) > limits.temporal_plot_periods_max:
        raise InvalidInput(
            f"{len(periods)} periods to draw, at most {limits.temporal_plot_periods_max} "
            "(limits.temporal_plot_periods_max): choose fewer with --from and --to"
        )
    picture = Picture(
        measure=books.measure.name,
        value_name=_value_name(books.measure.value),
        tz=calendar.tz,
        as_known_at=at,
        periods=periods,
        starts={p: calendar.start(p) for p in periods},
        ends={p: calendar.end(p) for p in periods},
        closes={p: calendar.closes(p) for p in periods},
    )
    if not periods:
        return picture
    picture.latest = {r.period: r.value for r in rows if r.period in picture.ends}
    for p in periods:
        if picture.ends[p] <= at:
            picture.first[p] = ledger.queries.period_figure(p, micros(picture.ends[p])).value
    totals: dict[str, int] = {}
    for period, us, added in ledger.queries.growth(periods[0], periods[-1], at_us):
        totals[period] = totals.get(period, 0) + added
        picture.growth.setdefault(period, []).append((from_micros(us), totals[period]))
    _notices(ledger, picture, at)
    return picture


def _notices(ledger: Ledger, picture: Picture, at: datetime) -> None:
    wanted = set(picture.periods)
    sealed_by: dict[str, int] = {}
    for n in ledger.feed():
        data = n.data
        if datetime.fromisoformat(data["advanced_at"]) > at:
            break  # the feed is in the order the advances wrote it
        when = datetime.fromisoformat(data["as_known_at"])
        if n.type == "PeriodClosed" and data["period"] in wanted:
            picture.sealed[data["period"]] = sealed_by[data["period"]] = data["value"]
        elif n.type == "CorrectionIssued" and data["period"] in wanted:
            picture.corrections.append(Change(data["period"], when, data["old"], data["new"]))
        elif n.type == "AdjustmentBooked" and data["belongs_to"] in wanted:
            base = sealed_by.get(data["belongs_to"], 0) + sum(
                a.new - a.old for a in picture.adjustments if a.period == data["belongs_to"]
            )
            picture.adjustments.append(
                Change(data["belongs_to"], when, base, base + data["value"], data["period"])
            )


def _latest(ledger: Ledger) -> datetime:
    """The latest instant the books know of: the last fact recorded or notice written."""
    ((last_us,),) = ledger.queries.query(
        f"SELECT coalesce(max(recorded_us), 0) FROM {ledger.books.facts}", ()
    )
    latest = from_micros(last_us)
    for n in ledger.feed():
        latest = max(latest, datetime.fromisoformat(n.data["advanced_at"]))
    return latest


def _value_name(value: object) -> str:
    if isinstance(value, str):
        return f"sum of {value}"
    return "count of events" if value is None else "sum of values"
