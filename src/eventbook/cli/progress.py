"""A progress bar for work over the global log (replay, checks): events, events/s and ETA,
on stderr, and only when the work is long enough to be worth watching."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

quiet_events_max = 20_000  # shorter work shows no bar


class _Rate(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[no-untyped-def]
        speed = task.finished_speed or task.speed
        return f"{speed:,.0f} events/s" if speed else ""


def with_progress(items: Iterable[T], total: int, what: str, every: int = 1000) -> Iterator[T]:
    """Yield `items`, showing a bar of `total` on stderr when total is large."""
    if total < quiet_events_max:
        yield from items
        return
    with Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(what, total=total)
        done = 0
        for item in items:
            yield item
            done += 1
            if done % every == 0:
                progress.update(task, completed=done)
        progress.update(task, completed=done)
