"""Catch-up subscriptions: read the global log from a position, then follow it live.

A subscription only ever asks the store for events after the last one it delivered, and
positions become visible in order, so it has no gap and no duplicate by construction.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from eventbook import limits
from eventbook.core.messages import RecordedEvent

if TYPE_CHECKING:
    from eventbook.store.contract import EventStore


class Subscription(Iterator[RecordedEvent]):
    """Iterate to receive events after `after`, for ever (until `close()`), or until no
    event arrived for `idle_timeout` seconds when one is given."""

    def __init__(self, store: EventStore, after: int, idle_timeout: float | None = None) -> None:
        self._store = store
        self.position = after  # the last position delivered
        self._idle_timeout = idle_timeout
        self._buffer: deque[RecordedEvent] = deque()
        self._stopped = threading.Event()

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> RecordedEvent:
        if self._stopped.is_set():
            raise StopIteration
        if not self._buffer:
            self._fill()
        event = self._buffer.popleft()
        assert event.position > self.position, "subscriptions deliver positions in order"
        self.position = event.position
        return event

    def _fill(self) -> None:
        deadline = None if self._idle_timeout is None else time.monotonic() + self._idle_timeout
        while not self._stopped.is_set() and not self._store.closed:
            page = list(self._store.read_all(after=self.position, limit=limits.read_page_count_max))
            if page:
                self._buffer.extend(page)
                return
            wait = 0.5
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            self._store.wait_for_append(self.position, wait)
        raise StopIteration

    def close(self) -> None:
        self._stopped.set()
        self._buffer.clear()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
