"""What the books announce, as events of their own in the stream `books-{measure}`.

- `FigurePublished`: a period ended; its figure as known at its end (the daily report).
- `CorrectionIssued`: late events changed a published figure before the period closed (seed
  000's 校正回歸): old and new figure, and the events that caused the change.
- `PeriodClosed`: the period's figure as known at its close, sealed with a digest of the
  facts it adds up.
- `AdjustmentBooked`: events for a closed period, booked into the period open when they
  arrived and linked to the period they belong to; the sealed figure stays as it is.

Instants are ISO 8601 text in UTC. `BooksState` is the fold of that stream: the periods
published and still open, the sealed ones, and how far the books have looked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventbook.core.messages import Event, RecordedEvent


class FigurePublished(Event, tag="FigurePublished"):
    measure: str
    period: str
    value: int
    count: int
    as_known_at: str  # the period's end
    advanced_at: str  # the `now` of the advance that wrote it
    through_position: int  # every fact up to this position had been seen


class CorrectionIssued(Event, tag="CorrectionIssued"):
    measure: str
    period: str
    old: int
    new: int
    old_count: int
    new_count: int
    causes: list[str]  # ids of the events that changed the figure (limits.temporal_causes_max)
    cause_positions: list[int]
    causes_count: int  # all of them, listed or not
    as_known_at: str
    advanced_at: str
    through_position: int


class PeriodClosed(Event, tag="PeriodClosed"):
    measure: str
    period: str
    value: int
    count: int
    digest: str  # sha256 of the facts the sealed figure adds up (see Ledger.digest)
    as_known_at: str  # the close: the period's end plus the maximum lateness
    advanced_at: str
    through_position: int


class AdjustmentBooked(Event, tag="AdjustmentBooked"):
    measure: str
    period: str  # the open period it is booked into (the one it arrived in)
    belongs_to: str  # the closed period it happened in
    value: int
    count: int
    causes: list[str]
    cause_positions: list[int]
    causes_count: int
    as_known_at: str
    advanced_at: str
    through_position: int


NOTICES: dict[str, type[Event]] = {
    "FigurePublished": FigurePublished,
    "CorrectionIssued": CorrectionIssued,
    "PeriodClosed": PeriodClosed,
    "AdjustmentBooked": AdjustmentBooked,
}


@dataclass(frozen=True)
class Announced:
    """The figure of a period as last announced (published or corrected)."""

    value: int
    count: int
    as_known_at_us: int


@dataclass(frozen=True)
class Sealed:
    value: int
    count: int
    digest: str


@dataclass
class BooksState:
    """The fold of a books stream."""

    version: int = 0
    announced: dict[str, Announced] = field(default_factory=dict)  # published, not closed
    sealed: dict[str, Sealed] = field(default_factory=dict)
    advanced_us: int | None = None  # the latest `now` an advance wrote something at
    through_position: int = 0  # facts up to here were looked at for adjustments


def fold(state: BooksState, recorded: RecordedEvent, micros_of: Any) -> None:
    """Apply one notice to the state (in place)."""
    data: dict[str, Any] = recorded.data
    state.version = recorded.version
    advanced = micros_of(datetime.fromisoformat(data["advanced_at"]))
    state.advanced_us = advanced if state.advanced_us is None else max(advanced, state.advanced_us)
    state.through_position = max(state.through_position, data["through_position"])
    at = micros_of(datetime.fromisoformat(data["as_known_at"]))
    if recorded.type == "FigurePublished":
        state.announced[data["period"]] = Announced(data["value"], data["count"], at)
    elif recorded.type == "CorrectionIssued":
        state.announced[data["period"]] = Announced(data["new"], data["new_count"], at)
    elif recorded.type == "PeriodClosed":
        state.announced.pop(data["period"], None)
        state.sealed[data["period"]] = Sealed(data["value"], data["count"], data["digest"])
