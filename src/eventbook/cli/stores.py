"""Which store a command works on, and how it is opened.

The global `--store` (or `EVENTBOOK_STORE`, or `./eventbook-data`) is kept on the click
context; a command's own `--store` wins over it. Read-only commands open the store read-only
so that they work while another process holds the writer lock.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer

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
    return registry.open_store(url)


def open_for_reading(url: str) -> EventStore:
    # The memory backend takes no `readonly` option (and a memory store is private to this
    # process anyway); every other backend is opened read-only, so reads never wait for or
    # block the writer.
    if url.startswith("memory:"):
        return registry.open_store(url)
    return registry.open_store(url, readonly=True)
