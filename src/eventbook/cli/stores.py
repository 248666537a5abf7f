"""Which store a command works on, and how it is opened.

The global `--store` (or `EVENTBOOK_STORE`, or `./eventbook-data`) is kept on the click
context; a command's own `--store` wins over it. Read-only commands open the store read-only
so that they work while another process holds the writer lock.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from eventbook.store import registry
from eventbook.store.contract import EventStore


@dataclass(frozen=True)
class Settings:
    """What the app callback learned before a command runs."""

    store: str


def store_url(ctx: typer.Context, store: str | None) -> str:
    """The command's own --store when given, else the global one."""
    if store:
        return store
    settings = ctx.find_object(Settings)
    return settings.store if settings else registry.DEFAULT_STORE


def open_for_writing(url: str) -> EventStore:
    if url.startswith("memory:") or registry.is_server_url(url):
        return registry.open_store(url)
    # Opening for writing may have to rebuild a lost or stale index from the whole log:
    # long work shows progress (on stderr, and only once it is more than a moment's work).
    with _RecoveryProgress() as progress:
        return registry.open_store(url, progress=progress)


class _RecoveryProgress:
    """A progress callback for LogStore.open: silent for short scans, a live count for long
    ones (`recovery_quiet_events` events and more)."""

    recovery_quiet_events = 20_000

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int) -> None:
        if done < self.recovery_quiet_events:
            return
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("rebuilding the store's indexes from the log:"),
                TextColumn("{task.completed:,} events"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("rebuild", total=None)
        assert self._task is not None
        self._progress.update(self._task, completed=done)

    def __enter__(self) -> _RecoveryProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def open_for_reading(url: str) -> EventStore:
    # The memory backend takes no `readonly` option (and a memory store is private to this
    # process anyway); every other backend is opened read-only, so reads never wait for or
    # block the writer.
    if url.startswith("memory:"):
        return registry.open_store(url)
    return registry.open_store(url, readonly=True)
