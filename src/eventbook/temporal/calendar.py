"""The calendar of a set of books: a time zone, the period that closes, how late data may come.

Periods are named by local time in the calendar's zone, as text that sorts in time order:
an hour `2026-11-24T09`, a day `2026-11-24`, a month `2026-11`. A day's name is the first ten
characters of each of its hours' names, a month's the first seven: a report by day or month
groups hours by a prefix of their names.

A period *ends* at its last instant (local midnight, for a day) and *closes* `max_lateness`
after it ends (seed 000's 關帳: 72 hours, say). Whatever is recorded for a period after its close
is an adjustment booked into the period open when it arrived; it never changes the sealed
figure.

`check_occurred_at` is the bad-input rule for the time a command says something happened: it
must carry a time zone, be no later than `skew` after the engine's clock, and no earlier than
the `horizon`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventbook import limits
from eventbook.errors import InvalidInput

PERIODS = ("hour", "day", "month")
KEY_CHARS = {"hour": 13, "day": 10, "month": 7}  # the prefix of an hour's name naming its period
AXES = ("occurred", "recorded")
HOUR_SECONDS = 3600
_SLOT_SECONDS = 900  # every UTC offset in use is a multiple of 15 minutes


def check_period(period: str) -> str:
    if period not in PERIODS:
        raise InvalidInput(f"period {period!r} is unknown; use one of {', '.join(PERIODS)}")
    return period


def check_axis(axis: str) -> str:
    if axis not in AXES:
        raise InvalidInput(
            f"axis {axis!r} is unknown; use 'occurred' (when it happened) or 'recorded' "
            "(when we learned it)"
        )
    return axis


def aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{what} {value.isoformat()} has no time zone; give an aware datetime "
            "(for example 2026-11-24T09:00:00+08:00)"
        )
    return value


def micros(t: datetime) -> int:
    """Microseconds since the epoch: how the read model keeps instants."""
    delta = t - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class Calendar:
    """Where and when the books' periods begin, end and close.

    `tz`: an IANA time zone (`Asia/Taipei`); periods are local days, hours and months there.
    `period`: the period that is published and closed (`day` by default).
    `max_lateness`: how long after a period ends it closes (72 hours by default).
    `skew`: how far in the future (after the engine's clock) an occurred time may be.
    `horizon`: the earliest occurred time accepted (None: no limit).
    """

    tz: str = "UTC"
    period: str = "day"
    max_lateness: timedelta = timedelta(hours=72)
    skew: timedelta = timedelta(minutes=5)
    horizon: datetime | None = None
    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _hours: dict[int, tuple[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidInput(
                f"time zone {self.tz!r} is unknown; give an IANA name such as 'UTC' or "
                "'Asia/Taipei'"
            ) from None
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "_hours", {})
        check_period(self.period)
        for name in ("max_lateness", "skew"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise InvalidInput(f"{name} must be a timedelta >= 0, got {value!r}")
        if self.max_lateness > timedelta(days=limits.temporal_lateness_max_days):
            raise InvalidInput(
                f"max_lateness {self.max_lateness} is over the limit of "
                f"{limits.temporal_lateness_max_days} days (limits.temporal_lateness_max_days)"
            )
        if self.horizon is not None:
            aware(self.horizon, "horizon")

    def describe(self) -> str:
        """The settings a read model's rows depend on (a change needs a rebuild)."""
        return f"tz={self.tz} period={self.period} max_lateness={self.max_lateness}"

    # -- naming periods -----------------------------------------------------------------------

    def hour_of(self, us: int) -> tuple[str, int]:
        """The local hour holding the instant `us` (microseconds since the epoch): its name
        and the instant it starts (seconds since the epoch). Cached per 15-minute slot."""
        slot = us // (_SLOT_SECONDS * 1_000_000)
        found = self._hours.get(slot)
        if found is None:
            local = from_micros(slot * _SLOT_SECONDS * 1_000_000).astimezone(self.zone)
            start = local.replace(minute=0, second=0, microsecond=0)
            found = (start.strftime("%Y-%m-%dT%H"), int(start.timestamp()))
            if len(self._hours) >= limits.temporal_hour_cache_max:
                self._hours.clear()
            self._hours[slot] = found
        return found

    def key(self, t: datetime, period: str | None = None) -> str:
        """The name of the period (the calendar's own by default) holding instant `t`."""
        name, _ = self.hour_of(micros(aware(t, "time")))
        return name[: KEY_CHARS[check_period(period or self.period)]]

    def start(self, key: str) -> datetime:
        """The first instant of the period named `key` (an hour, day or month name)."""
        try:
            if len(key) == KEY_CHARS["month"]:
                local = datetime.combine(date.fromisoformat(key + "-01"), time(0))
            elif len(key) == KEY_CHARS["day"]:
                local = datetime.combine(date.fromisoformat(key), time(0))
            elif len(key) == KEY_CHARS["hour"]:
                local = datetime.fromisoformat(key + ":00")
            else:
                raise ValueError(key)
        except ValueError:
            raise InvalidInput(
                f"period {key!r} is not a period name: use YYYY-MM (month), YYYY-MM-DD (day) "
                "or YYYY-MM-DDTHH (hour)"
            ) from None
        return local.replace(tzinfo=self.zone).astimezone(UTC)

    def end(self, key: str) -> datetime:
        """The instant the period named `key` ends (the start of the next one)."""
        start = self.start(key).astimezone(self.zone)
        if len(key) == KEY_CHARS["hour"]:
            return (self.start(key) + timedelta(hours=1)).astimezone(UTC)
        if len(key) == KEY_CHARS["day"]:
            nxt = datetime.combine(start.date() + timedelta(days=1), time(0))
        else:
            year, month = divmod(start.month, 12)
            nxt = datetime(start.year + year, month + 1, 1)
        return nxt.replace(tzinfo=self.zone).astimezone(UTC)

    def closes(self, key: str) -> datetime:
        """The instant the period named `key` closes: its end plus the maximum lateness."""
        return self.end(key) + self.max_lateness

    # -- bad input ----------------------------------------------------------------------------

    def check_occurred_at(self, occurred_at: datetime, *, now: datetime) -> datetime:
        """Refuse an occurred time without a zone, later than `now + skew`, or before the
        horizon (`InvalidInput`, saying which rule and the bound)."""
        aware(occurred_at, "occurred_at")
        if occurred_at > now + self.skew:
            raise InvalidInput(
                f"occurred_at {occurred_at.isoformat()} is in the future: it is more than "
                f"{self.skew} (the calendar's skew) after now, {now.isoformat()}"
            )
        if self.horizon is not None and occurred_at < self.horizon:
            raise InvalidInput(
                f"occurred_at {occurred_at.isoformat()} is before the horizon "
                f"{self.horizon.isoformat()}: events that old are not accepted"
            )
        return occurred_at
