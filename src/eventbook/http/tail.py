"""The log's tail, read once and encoded once for every Server-Sent Events subscriber.

One thread waits on the store; when events arrive it reads them, encodes each as its SSE
bytes (`id: <position>` and `data: <event JSON>`), keeps the newest in a bounded buffer and
wakes every waiting subscriber. A subscriber at the tail takes the bytes after its position
from the buffer (one join, no store read, no encoding); one further behind catches up from
the store itself until the buffer covers it. A hundred subscribers cost one read and one
encoding per event, not a hundred.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections.abc import Callable

from eventbook import limits
from eventbook.core.messages import RecordedEvent
from eventbook.errors import EventbookError
from eventbook.store.contract import EventStore

Encode = Callable[[RecordedEvent], bytes]


class Tail:
    def __init__(self, store: EventStore, encode: Encode) -> None:
        self.store = store
        self.encode = encode
        self.last = 0  # the last position read into the buffer
        self._positions: list[int] = []
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin following (from the current head) on a thread; call from the event loop."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.last = self.store.head_position()
        self._thread = threading.Thread(target=self._run, name="eventbook-http-tail", daemon=True)
        self._thread.start()

    def after(self, position: int) -> tuple[bytes, int] | None:
        """The encoded events after `position` and the last one's position; None when the
        buffer does not reach back to `position` (read the store instead)."""
        with self._lock:
            if position >= self.last:
                return b"", position
            if not self._positions or position < self._positions[0] - 1:
                return None
            start = bisect.bisect_right(self._positions, position)
            return b"".join(self._chunks[start:]), self._positions[-1]

    async def wait(self, position: int, timeout: float) -> None:
        """Until events after `position` are in the buffer, or `timeout` seconds."""
        if self._thread is None:
            self.start()
        if self.last > position:
            return
        assert self._event is not None
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return

    def _run(self) -> None:
        while not self._stop.is_set() and not self.store.closed:
            try:
                if not self.store.wait_for_append(self.last, 1.0):
                    continue
                self._read()
            except EventbookError:  # the store closed or went away: waiters time out
                if self.store.closed:
                    return
                time.sleep(0.5)
                continue
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._wake)

    def _read(self) -> None:
        while True:
            events = list(self.store.read_all(after=self.last, limit=limits.read_page_count_max))
            if not events:
                return
            encoded = [self.encode(e) for e in events]
            with self._lock:
                self._positions.extend(e.position for e in events)
                self._chunks.extend(encoded)
                self.last = events[-1].position
                overflow = len(self._positions) - limits.http_sse_buffer_events_max
                if overflow > 0:
                    del self._positions[:overflow]
                    del self._chunks[:overflow]

    def _wake(self) -> None:
        assert self._event is not None
        old, self._event = self._event, asyncio.Event()
        old.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3)


__all__ = ["Tail"]
