"""From a store URL to a store: the one place that names the backends (by URL scheme)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from eventbook.errors import InvalidInput
from eventbook.store.contract import EventStore

DEFAULT_STORE = "./eventbook-data"
SCHEMES = "a path, file://PATH, memory://, postgresql://USER@HOST:PORT/DB, nats://HOST:PORT"


def open_store(url: str | os.PathLike[str] | None = None, **options: Any) -> EventStore:
    """Open a store by URL: a path or `file://` (the embedded log), `memory://`, or
    `postgresql://USER@HOST:PORT/DB` (`postgres://` too), or `nats://HOST:PORT` (NATS
    JetStream; several servers separated by commas).

    Options go to the backend (for the embedded log: `readonly=True`, `sync="always"|"none"`;
    for PostgreSQL: `schema=`, `readonly=True`, `pool_size=`; for NATS: `stream=`, `replicas=`,
    `readonly=True`).
    With no URL, `EVENTBOOK_STORE` or `./eventbook-data` is used.
    """
    store_url = _resolve(url)
    if store_url.startswith("memory:"):
        from eventbook.backends.memory import MemoryStore

        return MemoryStore(store_url, **options)
    if store_url.startswith(("nats:", "tls:")):
        return _open_nats(store_url, **options)
    if is_server_url(store_url):
        return _open_postgres(store_url, **options)
    from eventbook.backends.log.store import LogStore

    return LogStore.open(_log_path(store_url), **options)


def verify_store(url: str | os.PathLike[str] | None = None, progress: Any = None) -> Any:
    """Check every stored byte of a store (checksums, positions, versions, indexes) without
    changing anything; works on a store that refuses to open. Returns a VerifyReport.
    `progress`, when given, is called as progress(done, total)."""
    from eventbook.store.reports import VerifyReport

    store_url = _resolve(url)
    if store_url.startswith("memory:"):
        return VerifyReport(store_url)
    from eventbook.backends.log.verify import verify_log

    return verify_log(_log_path(store_url), progress=progress)


def repair_store(url: str | os.PathLike[str] | None = None) -> Any:
    """Move damaged or torn bytes aside (into quarantine/, never deleting them), cut the log
    at the first damaged record, and rebuild the indexes. Returns a RepairReport."""
    from eventbook.store.reports import RepairReport

    store_url = _resolve(url)
    if store_url.startswith("memory:"):
        return RepairReport(store_url)
    from eventbook.backends.log.verify import repair_log

    return repair_log(_log_path(store_url))


def inspect_store(url: str | os.PathLike[str] | None = None, segment: int | None = None) -> Any:
    """Iterate the record headers (FrameInfo) of one segment (default: the last one)."""
    store_url = _resolve(url)
    if store_url.startswith("memory:"):
        raise InvalidInput("inspect reads the files of an embedded log; give its path")
    from eventbook.backends.log.verify import inspect_log

    return inspect_log(_log_path(store_url), segment)


def is_server_url(url: str) -> bool:
    """Whether a store URL names a server (PostgreSQL, NATS), not a directory or memory."""
    return url.startswith(("postgresql:", "postgres:", "nats:", "tls:"))


def _open_postgres(url: str, **options: Any) -> EventStore:
    try:
        from eventbook.backends.postgres.store import open_postgres
    except ImportError as exc:
        raise InvalidInput(
            f"a postgresql:// store needs psycopg 3 and its pool ({exc.name} is missing): "
            "pip install 'eventbook[postgres]'"
        ) from None
    return open_postgres(url, **options)


def _open_nats(url: str, **options: Any) -> EventStore:
    try:
        from eventbook.backends.nats.store import open_nats
    except ImportError as exc:
        raise InvalidInput(
            f"a nats:// store needs nats-py ({exc.name} is missing): pip install 'eventbook[nats]'"
        ) from None
    return open_nats(url, **options)


def _resolve(url: str | os.PathLike[str] | None) -> str:
    """The store URL to use: the given one, else EVENTBOOK_STORE, else the default."""
    if url is None:
        url = os.environ.get("EVENTBOOK_STORE") or DEFAULT_STORE
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(f"store URL must be a non-empty string; use {SCHEMES}")
    return url


def _log_path(url: str) -> Path:
    """The directory of an embedded log, from a path or a file:// URL."""
    if is_server_url(url):
        raise InvalidInput(
            "verify, repair and inspect read the files of an embedded log; a PostgreSQL or NATS "
            "store's bytes are its server's to check (PostgreSQL: amcheck, data checksums). "
            "`eventbook replay --verify` checks any store by replaying it."
        )
    if url.startswith("file:"):
        parsed = urlparse(url)
        path = unquote(parsed.netloc + parsed.path)
        if not path:
            raise InvalidInput(f"store URL {url!r} names no path; use file:///absolute/path")
        return Path(path)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise InvalidInput(f"store URL scheme {scheme!r} is not supported (yet); use {SCHEMES}")
    return Path(url)
