"""From a store URL to a store: the one place that names the backends (by URL scheme)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from eventbook.errors import InvalidInput
from eventbook.store.contract import EventStore

DEFAULT_STORE = "./eventbook-data"
SCHEMES = "a path, file://PATH, memory://"


def open_store(url: str | os.PathLike[str] | None = None, **options: Any) -> EventStore:
    """Open a store by URL: a path or `file://` (the embedded log), or `memory://`.

    Options go to the backend (for the embedded log: `readonly=True`, `sync="always"|"none"`).
    With no URL, `EVENTBOOK_STORE` or `./eventbook-data` is used.
    """
    if url is None:
        url = os.environ.get("EVENTBOOK_STORE") or DEFAULT_STORE
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(f"store URL must be a non-empty string; use {SCHEMES}")
    if url.startswith("memory:"):
        from eventbook.backends.memory import MemoryStore

        return MemoryStore(url, **options)
    if url.startswith("file:"):
        parsed = urlparse(url)
        path = unquote(parsed.netloc + parsed.path)
        if not path:
            raise InvalidInput(f"store URL {url!r} names no path; use file:///absolute/path")
        return _open_log(Path(path), **options)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise InvalidInput(f"store URL scheme {scheme!r} is not supported (yet); use {SCHEMES}")
    return _open_log(Path(url), **options)


def _open_log(path: Path, **options: Any) -> EventStore:
    from eventbook.backends.log.store import LogStore

    return LogStore.open(path, **options)
