"""One progress bar for long work over the global log (replay, checks, rebuilds): events,
events/s and ETA, on stderr."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

quiet_events_max = 20_000  # work over fewer events shows no bar (with_progress)


class ProgressBar:
    """Call it with (done, total) as work advances; it appears on the first call."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.progress: Progress | None = None
        self.task: Any = None
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            self.progress = Progress(
                TextColumn(self.what),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.what, total=total, rate="")
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.progress.update(
            self.task, completed=done, total=total, rate=f"{done / elapsed:,.0f} events/s"
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_progress(items: Iterable[T], total: int, what: str, every: int = 1000) -> Iterator[T]:
    """Yield `items`, showing a bar of `total` on stderr when total is large."""
    if total < quiet_events_max:
        yield from items
        return
    with ProgressBar(what) as bar:
        done = 0
        for item in items:
            yield item
            done += 1
            if done % every == 0:
                bar(done, total)
        bar(done, total)
