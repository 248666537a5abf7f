"""Moving the stream index's in-memory tail into SQLite on a background thread.

Appends only add rows to the in-memory tail; this thread writes them to SQLite in big
transactions. SQLite does its work without the GIL, so on a machine with two cores the
index costs appends almost nothing. Rows leave the in-memory tail only after their SQLite
transaction committed, so a reader always finds every row in one place or the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class IndexFlusher:
    def __init__(self, flush: Callable[[], None], on_error: Callable[[Exception], None]) -> None:
        self._flush = flush
        self._on_error = on_error
        self._wanted = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Ask for a flush soon (returns at once; starts the thread the first time)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="eventbook-index", daemon=True)
            self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                return
            try:
                self._flush()
            except Exception as error:  # the store turns read-only; the index is rebuilt later
                self._on_error(error)
                return

    def stop(self) -> None:
        """Let a flush in progress finish, and end the thread."""
        self._stopping = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
