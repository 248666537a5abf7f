"""Read-mode state machines (seed 001): replicas that execute events and never handle commands.

A live replica follows the global log and keeps every stream's state current; as it crosses a
business midnight it saves that day's cut-off (the whole state as recorded by midnight), which
is cheap because it holds the whole state already. A pinned replica stays at a cut-off and
answers queries about that moment. Each exposes the canonical state hash, which equals the hash
of a fresh replay to the same position.
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime
from typing import Any

from eventbook.core.messages import RecordedEvent
from eventbook.engine.codec import EventDecoder
from eventbook.engine.cutoffs import business_day, day_end_position, save_day_end
from eventbook.engine.folding import AppState, Target, app_code_version, decider_of, fold_app
from eventbook.engine.model import Application
from eventbook.store.contract import EventStore
from eventbook.store.snapshots import DAY_END_KEY, Criteria


class Replica:
    """The whole application's state, kept by executing the log.

    `until`: pin the replica at this position (it never goes further).
    `save_day_ends`: save a cut-off snapshot each time the log crosses a business midnight.
    """

    def __init__(
        self,
        app: Application,
        store: EventStore,
        *,
        until: int | None = None,
        save_day_ends: bool = False,
        use_snapshots: bool = True,
    ) -> None:
        self.app = app
        self.store = store
        self.until = until
        self.save_day_ends = save_day_ends
        self.decoder = EventDecoder(app)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Start from the latest day-end cut-off at or before the pin (or the head), not from 0.
        target = Target(at_position=until) if until is not None else Target()
        if until is None and save_day_ends:  # stop at the cut-off: the midnights after it are saved
            cut = store.snapshots().latest(DAY_END_KEY, app_code_version(app), Criteria())
            target = Target(at_position=cut.position if cut and use_snapshots else 0)
        self._folded: AppState = fold_app(
            app, store, self.decoder, target, use_snapshots=use_snapshots
        )
        self.label = ""
        self.error: Exception | None = None  # why the follower thread stopped, if it failed

    @classmethod
    def at_day_end(cls, app: Application, store: EventStore, day: date) -> Replica:
        """A replica pinned at the end of a business day."""
        replica = cls(app, store, until=day_end_position(store, day, app.business_tz))
        replica.label = day.isoformat()
        return replica

    @property
    def position(self) -> int:
        return self._folded.position

    @property
    def states(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._folded.states)

    def state(self, stream: str) -> Any:
        decider = decider_of(self.app, stream)
        with self._lock:
            return self._folded.states.get(stream, decider.initial_state)

    def state_hash(self) -> str:
        with self._lock:
            return self._folded.state_hash()

    def catch_up(self) -> int:
        """Execute every event visible now (up to the pin); returns the new position."""
        limit = None if self.until is None else max(0, self.until - self.position)
        if limit == 0:
            return self.position
        for rec in self.store.read_all(after=self.position, limit=limit):
            self._apply(rec)
        return self.position

    def _apply(self, rec: RecordedEvent) -> None:
        with self._lock:
            if rec.position <= self._folded.position:
                return  # catch_up() and the follower thread both read: each event counts once
            last = self._folded.recorded_at
            if self.save_day_ends and last is not None:
                self._save_crossed_midnight(last, rec.recorded_at)
            self._folded.apply(self.app, self.decoder, rec)

    def _save_crossed_midnight(self, last: datetime, now: datetime) -> None:
        tz = self.app.business_tz
        day = business_day(last, tz)
        if business_day(now, tz) > day:
            save_day_end(self.app, self.store, self._folded, day, now)

    def start(self) -> None:
        """Follow the log in a background thread until `stop()`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._follow, name="eventbook-replica", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            self._follow_log()
        except Exception as error:  # kept and raised by wait_for: never a silent stop
            self.error = error

    def _follow_log(self) -> None:
        with self.store.subscribe(after=self.position, idle_timeout=0.1) as events:
            while not self._stop.is_set() and not self.store.closed:
                for rec in events:
                    if self.until is not None and rec.position > self.until:
                        return
                    self._apply(rec)
                    if self._stop.is_set():
                        return

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        """Block until the replica has executed `position` (read-your-writes)."""
        deadline = time.monotonic() + timeout
        while self.position < position and time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            self._stop.wait(0.002)
        return self.position >= position

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
