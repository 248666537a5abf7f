"""eventbook as the benchmarks drive it: through its public API only (`eventbook.open_store`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import eventbook as eb

LABEL = "eventbook"
STREAM_EVENTS = 100  # events per stream when loading, like the peer's 100 events per aggregate


def is_memory(location: str) -> bool:
    return location.startswith("memory:")


def open_ours(location: str, **options: Any) -> eb.EventStore:
    """Open the store at `location` (a path, or memory:// which takes no options)."""
    if is_memory(location):
        return eb.open_store(location)
    return eb.open_store(location, **options)


def appender(store: eb.EventStore, writer: int) -> Callable[[int], None]:
    """A function that appends `count` events to this writer's stream in one commit."""
    stream = f"account-{writer}"

    def append(count: int) -> None:
        store.append([eb.NewEvent(stream, "Deposited", {"amount": 1}) for _ in range(count)])

    return append


def load(
    store: eb.EventStore, events: int, batch: int, on_commit: Callable[[int], None] | None = None
) -> None:
    """Append `events` events, `batch` per commit, in streams of STREAM_EVENTS events."""
    done = 0
    while done < events:
        count = min(batch, events - done)
        store.append(
            [
                eb.NewEvent(f"account-{(done + i) // STREAM_EVENTS}", "Deposited", {"amount": 1})
                for i in range(count)
            ]
        )
        done += count
        if on_commit is not None:
            on_commit(count)


def read_all(store: eb.EventStore) -> Iterator[Any]:
    """Every event, decoded: what a projection sees (its data dict)."""
    for event in store.read_all():
        yield event.data


def read_nth(store: eb.EventStore, n: int) -> eb.RecordedEvent:
    """The Nth event of the global order (decoded, data included)."""
    return next(store.read_all(after=n - 1, limit=1))


def open_close(location: str) -> None:
    """Open as a user does, ask for the head position (ready to serve), close."""
    store = open_ours(location)
    store.head_position()
    store.close()
