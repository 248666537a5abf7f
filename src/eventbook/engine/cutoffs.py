"""Day-end cut-offs (seed 001's 日切): the whole state as recorded by midnight of a business day.

The cut-off of day D is the state after the last event recorded before midnight ending D in
the application's business time zone. Recorded times never decrease along positions, so that
event is found by a binary search over positions. Month, quarter and year ends reuse the
cut-off of their last day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventbook.engine.folding import AppState, app_code_version, encode_app_state
from eventbook.engine.model import Application
from eventbook.errors import InvalidInput
from eventbook.store.contract import EventStore
from eventbook.store.snapshots import DAY_END_KEY, Snapshot


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"business time zone {name!r} is unknown; give an IANA name such as 'UTC' or "
            "'Asia/Shanghai'"
        ) from None


def midnight_after(day: date, tz: str) -> datetime:
    """The instant the business day `day` ends."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone(tz))


def business_day(t: datetime, tz: str) -> date:
    return t.astimezone(zone(tz)).date()


def day_end_position(store: EventStore, day: date, tz: str) -> int:
    """The position of the last event recorded before `day` ended (0 if none was)."""
    end = midnight_after(day, tz)
    lo, hi = 0, store.head_position()  # invariant: lo is before the end, hi+1 is not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        event = next(store.read_all(after=mid - 1, limit=1))
        if event.recorded_at < end:
            lo = mid
        else:
            hi = mid - 1
    return lo


def save_day_end(
    app: Application, store: EventStore, folded: AppState, day: date, taken_at: datetime
) -> Snapshot:
    snapshot = Snapshot(
        key=DAY_END_KEY,
        version=0,
        position=folded.position,
        recorded_at=folded.recorded_at,
        max_occurred_at=folded.max_occurred_at,
        code_version=app_code_version(app),
        schema_version=1,
        state=encode_app_state(app, folded.states),
        state_hash=folded.state_hash(),
        label=day.isoformat(),
        taken_at=taken_at,
    )
    store.snapshots().save(snapshot)
    return snapshot
