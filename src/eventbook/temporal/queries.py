"""Bitemporal questions put to a books read model (`Books` tables in SQLite).

Every question names its axis: *occurred* (when it happened) or *recorded* (when we learned
it), and the instant S it is asked "as known at" (None: everything recorded so far). Sums by
period come from the cells, plus the facts of the one hour that S falls in; a figure over any
occurrence interval comes from the facts (indexed by occurrence time).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventbook import limits
from eventbook.errors import InvalidInput
from eventbook.temporal.books import Books
from eventbook.temporal.calendar import (
    HOUR_SECONDS,
    KEY_CHARS,
    aware,
    check_axis,
    check_period,
    micros,
)

_HOUR_US = HOUR_SECONDS * 1_000_000
_TOP = "~"  # sorts after every character of a period name: "2026-11-24~" ends that day


@dataclass(frozen=True)
class Figure:
    value: int
    count: int


@dataclass(frozen=True)
class ReportRow:
    """One period of a report: its name, the sum and the number of events.
    `after_close`: the part of it that arrived after its period closed (occurred axis) or
    that belongs to periods already closed when it arrived (recorded axis)."""

    period: str
    value: int
    count: int
    after_close_value: int = 0
    after_close_count: int = 0


class BooksQueries:
    """Reads a books read model. `query(sql, params)` runs SQL against the model's views."""

    def __init__(self, books: Books, query: Any) -> None:
        self.books = books
        self.calendar = books.calendar
        self.query = query
        self.facts, self.cells = books.facts, books.cells

    def check_calendar(self) -> None:
        rows = self.query(f"SELECT calendar FROM {self.books.meta}", ())
        found = rows[0][0] if rows else None
        if found is not None and found != self.calendar.describe():
            raise InvalidInput(
                f"the books {self.books.name} were built with {found}; the calendar now says "
                f"{self.calendar.describe()}: bump the Books version to rebuild them"
            )

    # -- reports by period --------------------------------------------------------------------

    def report(
        self,
        *,
        axis: str = "occurred",
        period: str = "day",
        as_known_at: datetime | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> list[ReportRow]:
        """The measure summed by period along `axis`, as known at `as_known_at`, for the
        periods from `start` to `end` (period names, both included; None: no bound)."""
        column = "occ" if check_axis(axis) == "occurred" else "rec"
        n = KEY_CHARS[check_period(period)]
        where, params = ["1"], []
        if start is not None:
            where.append(f"{column} >= ?")
            params.append(start)
        if end is not None:
            where.append(f"{column} < ?")
            params.append(end + _TOP)
        cut_us = None
        if as_known_at is not None:
            cut_us = micros(aware(as_known_at, "as_known_at"))
            where.append("rec_hour <= ?")
            params.append((cut_us - _HOUR_US) // 1_000_000)  # hours wholly recorded by S
        sums: dict[str, list[int]] = {}
        sql = (
            f"SELECT substr({column}, 1, {n}), after_close, sum(total), sum(count) "
            f"FROM {self.cells} WHERE {' AND '.join(where)} GROUP BY 1, 2"
        )
        for key, after, total, count in self.query(sql, params):
            _add(sums, key, after, total, count)
        if cut_us is not None:
            for key, after, value in self._edge(cut_us, column, n, start, end):
                _add(sums, key, after, value, 1)
        return [
            ReportRow(key, s[0] + s[2], s[1] + s[3], s[2], s[3]) for key, s in sorted(sums.items())
        ]

    def _edge(
        self, cut_us: int, column: str, n: int, start: str | None, end: str | None
    ) -> Iterator[tuple[str, int, int]]:
        """The facts recorded by S in an hour that had not ended at S."""
        rows = self.query(
            f"SELECT occ, recorded_us, after_close, value FROM {self.facts} "
            "WHERE recorded_us > ? AND recorded_us <= ? AND rec_hour > ?",
            (cut_us - 2 * _HOUR_US, cut_us, (cut_us - _HOUR_US) // 1_000_000),
        )
        for occ, recorded_us, after, value in rows:
            name = occ if column == "occ" else self.calendar.hour_of(recorded_us)[0]
            if (start is None or name >= start) and (end is None or name < end + _TOP):
                yield name[:n], after, value

    def growth(self, start: str, end: str, as_known_at_us: int) -> list[tuple[str, int, int]]:
        """How the calendar's periods from `start` to `end` grew as their events were learned:
        (period, instant in µs, value added), in time order. Hours wholly recorded by S come
        from the cells, at the hour's start; the hour S falls in from its facts, at their own
        instants."""
        n = KEY_CHARS[self.calendar.period]
        cut_hour = (as_known_at_us - _HOUR_US) // 1_000_000
        rows = [
            (key, hour * 1_000_000, total)
            for key, hour, total in self.query(
                f"SELECT substr(occ, 1, {n}), rec_hour, sum(total) FROM {self.cells} "
                "WHERE occ >= ? AND occ < ? AND rec_hour <= ? GROUP BY 1, 2",
                (start, end + _TOP, cut_hour),
            )
        ]
        rows += self.query(
            f"SELECT substr(occ, 1, {n}), recorded_us, value FROM {self.facts} "
            "WHERE recorded_us > ? AND recorded_us <= ? AND rec_hour > ? AND occ >= ? AND occ < ?",
            (as_known_at_us - 2 * _HOUR_US, as_known_at_us, cut_hour, start, end + _TOP),
        )
        return sorted(rows, key=lambda r: (r[1], r[0]))

    # -- figures over an occurrence interval --------------------------------------------------

    def figure(
        self,
        *,
        occurred_from: datetime | None = None,
        occurred_until: datetime | None = None,
        as_known_at: datetime | None = None,
        after_close: bool = True,
    ) -> Figure:
        """The sum of the events that occurred in [occurred_from, occurred_until) and were
        recorded by `as_known_at`: "as it was at T, as known at S". `after_close=False`
        leaves out what arrived after its period closed (the sealed books' view)."""
        where, params = ["1"], []
        for bound, sql in (
            (occurred_from, "occurred_us >= ?"),
            (occurred_until, "occurred_us < ?"),
        ):
            if bound is not None:
                where.append(sql)
                params.append(micros(aware(bound, "occurred time")))
        if as_known_at is not None:
            where.append("recorded_us <= ?")
            params.append(micros(aware(as_known_at, "as_known_at")))
        if not after_close:
            where.append("after_close = 0")
        ((value, count),) = self.query(
            f"SELECT coalesce(sum(value), 0), count(*) FROM {self.facts} "
            f"WHERE {' AND '.join(where)}",
            params,
        )
        return Figure(value, count)

    def period_figure(self, period: str, as_known_at_us: int) -> Figure:
        """A period's figure by occurrence, as known at an instant (microseconds)."""
        start, end = self._bounds(period)
        ((value, count),) = self.query(
            f"SELECT coalesce(sum(value), 0), count(*) FROM {self.facts} "
            "WHERE occurred_us >= ? AND occurred_us < ? AND recorded_us <= ?",
            (start, end, as_known_at_us),
        )
        return Figure(value, count)

    def _bounds(self, period: str) -> tuple[int, int]:
        return micros(self.calendar.start(period)), micros(self.calendar.end(period))

    # -- what the closing needs ---------------------------------------------------------------

    def causes(
        self, period: str, after_us: int, through_us: int
    ) -> tuple[list[str], list[int], int]:
        """The events of a period recorded in (after, through]: ids and positions (at most
        `limits.temporal_causes_max` listed) and how many there are."""
        start, end = self._bounds(period)
        where = "occurred_us >= ? AND occurred_us < ? AND recorded_us > ? AND recorded_us <= ?"
        params = (start, end, after_us, through_us)
        rows = self.query(
            f"SELECT id, position FROM {self.facts} WHERE {where} ORDER BY position LIMIT ?",
            (*params, limits.temporal_causes_max),
        )
        ((count,),) = self.query(f"SELECT count(*) FROM {self.facts} WHERE {where}", params)
        return [r[0] for r in rows], [r[1] for r in rows], count

    def digest(self, period: str, as_known_at_us: int) -> str:
        """sha256 over the facts of a period known at an instant, in position order: one line
        `position id value` each, after a first line naming the measure and the period."""
        start, end = self._bounds(period)
        h = hashlib.sha256(f"{self.books.measure.name} {period}\n".encode())
        for position, event_id, value in self.query(
            f"SELECT position, id, value FROM {self.facts} WHERE occurred_us >= ? AND "
            "occurred_us < ? AND recorded_us <= ? ORDER BY position",
            (start, end, as_known_at_us),
        ):
            h.update(f"{position} {event_id} {value}\n".encode())
        return h.hexdigest()

    def through_position(self, as_known_at_us: int) -> int:
        """The last fact recorded by an instant (0 if none)."""
        rows = self.query(
            f"SELECT position FROM {self.facts} WHERE recorded_us <= ? "
            "ORDER BY recorded_us DESC, position DESC LIMIT 1",
            (as_known_at_us,),
        )
        return rows[0][0] if rows else 0

    def periods_occurring(self, from_us: int | None, until_us: int) -> list[str]:
        """The periods with facts that occurred in hours starting in [from, until)."""
        n = KEY_CHARS[self.calendar.period]
        rows = self.query(
            f"SELECT DISTINCT substr(occ, 1, {n}) FROM {self.cells} "
            "WHERE occ_hour >= ? AND occ_hour < ?",
            (
                -(2**62) if from_us is None else from_us // 1_000_000,
                until_us // 1_000_000,
            ),
        )
        return [r[0] for r in rows]

    def periods_of_facts(self, after: int, through: int) -> list[str]:
        n = KEY_CHARS[self.calendar.period]
        rows = self.query(
            f"SELECT DISTINCT substr(occ, 1, {n}) FROM {self.facts} "
            "WHERE position > ? AND position <= ?",
            (after, through),
        )
        return [r[0] for r in rows]

    def after_close_facts(self, after: int, through: int) -> list[tuple[int, str, str, int, int]]:
        """Facts in (after, through] that arrived after their period closed: position, id,
        occurrence hour name, recorded instant (µs), value."""
        return self.query(
            f"SELECT position, id, occ, recorded_us, value FROM {self.facts} "
            "WHERE position > ? AND position <= ? AND after_close = 1 ORDER BY position",
            (after, through),
        )


def _add(sums: dict[str, list[int]], key: str, after: int, value: int, count: int) -> None:
    s = sums.setdefault(key, [0, 0, 0, 0])
    s[2 if after else 0] += value
    s[3 if after else 1] += count
