"""A measure and its books: what is summed from the log, and the projection that keeps it.

A `Measure` names the events that count (`handles`) and the integer each contributes (a data
field such as `amount`, a function of the recorded event, or 1 to count events). `Books` ties a
measure to a `Calendar` and declares the projection (`books.projection`) whose SQLite tables
hold every fact of the measure with both its times:

- `{m}_facts`: one row per event: position, event id, the local hour it occurred in, both
  instants, its value, and whether it arrived after its period closed;
- `{m}_cells`: the sums of the facts by (hour it occurred, hour it was recorded, after close):
  a few rows per hour of history whatever the number of events. A report "as known at S"
  adds up the cells recorded in hours that ended by S, and the facts of the hour S falls in.

A late event touches one fact row and one cell: nothing else is recomputed. The tables depend
on the calendar (zone, period, maximum lateness), which is kept in `{m}_meta` and checked when
the books are read: change the calendar and bump `version` to rebuild.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventbook.core.messages import RecordedEvent
from eventbook.engine import Command, Engine, Outcome
from eventbook.errors import InvalidInput
from eventbook.limits import data_int_max, data_int_min
from eventbook.projections import Projection
from eventbook.temporal.calendar import KEY_CHARS, Calendar, micros

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Measure:
    """What the books sum: the events of the types in `handles`, each contributing `value`:
    the name of an integer field of the event's data (`"amount"`), a function of the
    `RecordedEvent` returning an int, or None to count events."""

    name: str
    handles: Iterable[str]
    value: str | Callable[[RecordedEvent], int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidInput(
                f"measure name {self.name!r} must be 1 to 40 lower-case letters, digits or '_', "
                "starting with a letter"
            )
        handles = frozenset(self.handles)
        if not handles:
            raise InvalidInput(f"measure {self.name}: name the event types it sums (handles=)")
        object.__setattr__(self, "handles", handles)

    def value_of(self, recorded: RecordedEvent) -> int:
        if self.value is None:
            return 1
        if isinstance(self.value, str):
            value = recorded.data.get(self.value)
        else:
            value = self.value(recorded)
        if type(value) is not int or not data_int_min <= value <= data_int_max:
            raise InvalidInput(
                f"measure {self.name}: the {recorded.type} at position {recorded.position} "
                f"gives {value!r}; expected an integer (a 64-bit one)"
            )
        return value


@dataclass
class Books:
    """A measure kept by a calendar: the projection to add to the application
    (`projections=[..., books.projection]`), the stream its notices go to
    (`books-{measure}`), and the rule for occurred times (`execute`)."""

    measure: Measure
    calendar: Calendar = field(default_factory=Calendar)
    version: int = 1

    def __post_init__(self) -> None:
        name = self.measure.name
        self.name = f"books_{name}"
        self.stream = f"books-{name}"
        self.facts = f"{name}_facts"
        self.cells = f"{name}_cells"
        self.meta = f"{name}_meta"
        self._key_chars = KEY_CHARS[self.calendar.period]
        self._closes: dict[str, int] = {}
        self.projection = Projection(
            self.name,
            self._handle,
            self.version,
            frozenset(self.measure.handles),
            "sqlite",
            {
                self.facts: "position INTEGER PRIMARY KEY, id TEXT NOT NULL, occ TEXT NOT NULL, "
                "occurred_us INTEGER NOT NULL, rec_hour INTEGER NOT NULL, "
                "recorded_us INTEGER NOT NULL, value INTEGER NOT NULL, "
                "after_close INTEGER NOT NULL",
                self.cells: "occ_hour INTEGER NOT NULL, rec_hour INTEGER NOT NULL, "
                "after_close INTEGER NOT NULL, occ TEXT NOT NULL, rec TEXT NOT NULL, "
                "total INTEGER NOT NULL, count INTEGER NOT NULL, "
                "PRIMARY KEY (occ_hour, rec_hour, after_close)",
                self.meta: "calendar TEXT NOT NULL",
            },
            self._setup,
            self._handle_batch,
            True,
        )

    # -- recording ----------------------------------------------------------------------------

    def execute(
        self,
        engine: Engine,
        command: Command,
        *,
        occurred_at: datetime,
        command_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """`engine.execute` after checking `occurred_at` against the calendar (a time zone,
        not beyond the skew after the engine's clock, not before the horizon): a bad time is
        refused with `InvalidInput` and nothing is written."""
        self.calendar.check_occurred_at(occurred_at, now=engine.clock())
        return engine.execute(
            command, command_id=command_id, occurred_at=occurred_at, metadata=metadata
        )

    # -- the projection -----------------------------------------------------------------------

    def _setup(self, tx: Any) -> None:
        facts = "{" + self.facts + "}"
        tx.execute(f"CREATE INDEX {facts}_recorded ON {facts} (recorded_us)")
        tx.execute(f"CREATE INDEX {facts}_occurred ON {facts} (occurred_us)")
        tx.execute(f"INSERT INTO {{{self.meta}}} VALUES (?)", (self.calendar.describe(),))

    def closes_us(self, period: str) -> int:
        found = self._closes.get(period)
        if found is None:
            found = self._closes[period] = micros(self.calendar.closes(period))
        return found

    def fact(self, recorded: RecordedEvent) -> tuple[Any, ...]:
        """The facts row of an event: (position, id, occ, occurred_us, rec_hour, recorded_us,
        value, after_close), plus the cell key parts (occ_hour, rec) at the end."""
        value = self.measure.value_of(recorded)
        occurred_us = micros(recorded.occurred_at)
        recorded_us = micros(recorded.recorded_at)
        occ, occ_hour = self.calendar.hour_of(occurred_us)
        rec, rec_hour = self.calendar.hour_of(recorded_us)
        after = int(recorded_us > self.closes_us(occ[: self._key_chars]))
        row = (recorded.position, recorded.id, occ, occurred_us, rec_hour, recorded_us, value)
        return (*row, after, occ_hour, rec)

    def _handle(self, tx: Any, event: Any, recorded: RecordedEvent) -> None:
        self._write(tx, [self.fact(recorded)])

    def _handle_batch(self, tx: Any, records: Iterable[RecordedEvent]) -> None:
        self._write(tx, [self.fact(r) for r in records])

    def _write(self, tx: Any, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        tx.executemany(
            f"INSERT INTO {{{self.facts}}} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [r[:8] for r in rows]
        )
        cells: dict[tuple[int, int, int], list[Any]] = {}
        for r in rows:
            key = (r[8], r[4], r[7])
            cell = cells.get(key)
            if cell is None:
                cells[key] = [r[8], r[4], r[7], r[2], r[9], r[6], 1]
            else:
                cell[5] += r[6]
                cell[6] += 1
        tx.executemany(
            f"INSERT INTO {{{self.cells}}} VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (occ_hour, rec_hour, after_close) DO UPDATE SET "
            "total = total + excluded.total, count = count + excluded.count",
            list(cells.values()),
        )


def books_in(app: Any) -> dict[str, Books]:
    """The books an application keeps (its projections declared by `Books`), by measure."""
    found = {}
    for projection in getattr(app, "projections", ()):
        owner = getattr(projection.handler, "__self__", None)
        if isinstance(owner, Books):
            found[owner.measure.name] = owner
    return found
