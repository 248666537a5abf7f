"""Connections to PostgreSQL: the store URL, the pool, errors that mean "server unreachable",
and the listener that wakes followers when a commit lands.

Every connection is in autocommit (an append is one statement, hence one transaction), in
UTC, and decodes `json` columns with msgspec.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import psycopg
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg_pool import ConnectionPool, PoolTimeout

from eventbook.errors import InvalidInput, StoreUnavailable

CONNECT_SECONDS = 10  # connect_timeout, and how long an operation waits for a pooled connection
DEFAULT_SCHEMA = "eventbook"
_OURS = {"schema"}  # query parameters of the store URL that are eventbook's, not libpq's


@dataclass(frozen=True)
class Target:
    """Where a postgresql:// store lives: libpq's conninfo, the schema, HOST:PORT for errors."""

    conninfo: str
    schema: str
    where: str


def parse_url(url: str, schema: str | None = None) -> Target:
    """Split a store URL into libpq's conninfo and eventbook's own parameters (`schema`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise InvalidInput(f"not a PostgreSQL URL: {url!r}; use postgresql://USER@HOST:PORT/DB")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in _OURS}
    theirs = [(k, v) for k, v in query if k not in _OURS]
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(theirs), ""))
    try:
        info = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise InvalidInput(f"PostgreSQL URL {url!r} is not understood: {exc}") from None
    host = str(info.get("host") or "localhost")
    port = str(info.get("port") or "5432")
    return Target(
        conninfo, schema or ours.get("schema") or DEFAULT_SCHEMA, f"PostgreSQL at {host}:{port}"
    )


class _JsonLoader(Loader):
    """`json` columns straight into msgspec (text format)."""

    def load(self, data: Buffer) -> Any:
        return _decode(data)


class _JsonBinaryLoader(_JsonLoader):
    """The same for binary results (a `json` value's binary form is its text)."""

    format = Format.BINARY


_decode = msgspec.json.decode


def configure(conn: psycopg.Connection) -> None:
    conn.adapters.register_loader("json", _JsonLoader)
    conn.adapters.register_loader("json", _JsonBinaryLoader)
    conn.execute("SET TIME ZONE 'UTC'")


def connect(target: Target, **kwargs: Any) -> psycopg.Connection:
    """One connection, or StoreUnavailable naming the server."""
    try:
        conn = psycopg.connect(
            target.conninfo, autocommit=True, connect_timeout=CONNECT_SECONDS, **kwargs
        )
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(target.where, exc) from None
    configure(conn)
    return conn


class Connections:
    """A pool of autocommit connections; `with connections.use() as conn:`."""

    def __init__(self, target: Target, size: int) -> None:
        self.target = target
        self.pool = ConnectionPool(
            target.conninfo,
            min_size=1,
            max_size=size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_SECONDS},
            configure=configure,
            timeout=CONNECT_SECONDS,
            name=f"eventbook-{target.schema}",
            open=False,
        )
        self.pool.open(wait=False)

    @contextmanager
    def use(self, unknown_outcome: bool = False) -> Iterator[psycopg.Connection]:
        """A pooled connection; a broken connection or an unreachable server raises
        StoreUnavailable (`unknown_outcome` says an append may have been recorded)."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable(self.target.where, exc) from None
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(self.target.where, exc, unknown_outcome) from None

    def close(self) -> None:
        self.pool.close(timeout=CONNECT_SECONDS)


class Listener:
    """A thread on a connection of its own that LISTENs on the store's channel and bumps a
    counter on each notification. Waiters use it to wake early; they poll all the same
    (a commit may become readable with no notification: an older transaction ending)."""

    def __init__(self, target: Target, channel: str) -> None:
        self.target = target
        self.channel = channel
        self.changed = threading.Condition()
        self.generation = 0
        self._stop = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="eventbook-pg-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                conn = psycopg.connect(
                    self.target.conninfo, autocommit=True, connect_timeout=CONNECT_SECONDS
                )
            except psycopg.Error:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            self._conn = conn
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self.bump()  # anything committed while we were not listening
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=0.5, stop_after=1):
                        self.bump()
            except psycopg.Error:
                pass
            finally:
                self._conn = None
                conn.close()

    def bump(self) -> None:
        with self.changed:
            self.generation += 1
            self.changed.notify_all()

    def wait(self, generation: int, timeout: float, stop: Callable[[], bool]) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.generation != generation or stop(), timeout)

    def close(self) -> None:
        self._stop.set()
        self.bump()
        self._thread.join(timeout=5)


class Notifier:
    """A thread on a connection of its own that sends the store's NOTIFY after commits.

    `poke()` returns at once; pokes that arrive while a notification is being sent are folded
    into the next one, so an append never waits for it and a burst of appends costs one
    notification. A failed send is tried again on a new connection."""

    def __init__(self, target: Target, channel: str) -> None:
        self.target = target
        self.channel = channel
        self.sent = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eventbook-pg-notify", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        while True:
            self._wake.wait()
            if self._stop.is_set():
                break
            self._wake.clear()
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = psycopg.connect(
                        self.target.conninfo, autocommit=True, connect_timeout=CONNECT_SECONDS
                    )
                conn.execute("SELECT pg_notify(%s, '')", [self.channel])
                self.sent += 1
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(0.05)
                self._wake.set()  # try again
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
