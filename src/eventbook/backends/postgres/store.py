"""The PostgreSQL store: `postgresql://USER@HOST:PORT/DB` (`?schema=NAME`, default eventbook).

An append is one call of the schema's `append()` function (migrations/002_append.sql), one
statement and one transaction; the design of ordering and visibility is in docs/postgres.md.
Reads of the global log take only events of transactions older than every transaction still
running, so positions become visible in order and a follower never skips a late commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import msgspec
from psycopg import sql

from eventbook import limits
from eventbook.backends.postgres.connection import (
    Connections,
    Listener,
    Notifier,
    Target,
    connect,
    parse_url,
)
from eventbook.backends.postgres.migrations import check_schema_name, migrate
from eventbook.backends.postgres.snapshots import PostgresSnapshots
from eventbook.core.messages import AppendResult, NewEvent, RecordedEvent
from eventbook.core.validation import check_id_text
from eventbook.errors import (
    DuplicateCommit,
    InvalidInput,
    StoreReadOnly,
    StoreUnavailable,
    WrongExpectedVersion,
)
from eventbook.store.commit import PreparedCommit, new_event_id, prepare_commit, result_of
from eventbook.store.contract import EventStore, StreamInfo, check_limit, check_position
from eventbook.store.expected import ANY, EXISTS, NO_STREAM
from eventbook.store.reading import page_stream
from eventbook.store.snapshots import SnapshotStore

_json = msgspec.json.Encoder()
_COLUMNS = (
    "position, stream, version, event_type, event_data, metadata, recorded_at, occurred_at, "
    "event_id, schema_version, commit_id"
)
SAFE = "tx < (SELECT pg_snapshot_xmin(pg_current_snapshot()))"  # the readable prefix
POOL_SIZE = 16
READ_ATTEMPTS = 4  # a read on a broken connection is tried again on a fresh one


class PostgresStore(EventStore):
    """An event store in a PostgreSQL schema. Open it with `eventbook.open_store(url)`."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        readonly: bool = False,
        pool_size: int = POOL_SIZE,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        target = parse_url(url, schema)
        check_schema_name(target.schema)
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise InvalidInput(f"pool_size must be an integer >= 1, got {pool_size!r}")
        self.url = url
        self.target: Target = target
        self.schema = target.schema
        self.readonly = readonly
        self._clock = clock  # None: the server's clock records commits
        with connect(target) as conn:  # a clear error now if the server is not there
            migrate(conn, target.schema)
        self._sql = _Statements(target.schema)
        self._connections = Connections(target, pool_size)
        self._listener: Listener | None = None
        self._notifier: Notifier | None = None
        self._notifier_lock = threading.Lock()

    # -- append -----------------------------------------------------------------------------

    def append(
        self,
        events: Iterable[NewEvent],
        *,
        expected: Mapping[str, object] | None = None,
        commit_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        self._check_open()
        prepared = prepare_commit(events, expected, commit_id, metadata)
        if self.readonly:
            raise StoreReadOnly(self.target.where, "it was opened with readonly=True")
        params = _append_params(prepared, self._clock() if self._clock else None)
        with self._connections.use(unknown_outcome=True) as conn:
            status, first, last, recorded_at, streams, versions = conn.execute(
                self._sql.append, params, binary=True
            ).fetchone()
        if status == "ok":
            self._notify()
            before = dict(zip(streams, versions, strict=True))
            written: dict[str, int] = {}
            for event in prepared.events:
                stream = event.stream
                written[stream] = written.get(stream, before[stream]) + 1
            return AppendResult(first, last, written, commit_id, recorded_at)
        if status == "duplicate":
            return result_of(self._read_positions(first, last))
        if status == "reused":
            raise DuplicateCommit(commit_id or "", first)
        stream = streams[0]
        raise WrongExpectedVersion(stream, prepared.expected[stream], versions[0])

    # -- reads ------------------------------------------------------------------------------

    def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backward: bool = False,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        self._check_open()
        version = self.stream_version(stream) if isinstance(stream, str) else 0
        return page_stream(
            stream,
            version,
            lambda lo, hi: self._rows(self._sql.stream_range, [stream, lo, hi]),
            from_version,
            backward,
            limit,
        )

    def read_all(self, *, after: int = 0, limit: int | None = None) -> Iterator[RecordedEvent]:
        self._check_open()
        check_position(after)
        limit = check_limit(limit)
        return self._read_all(after, self.head_position(), limit)

    def _read_all(self, after: int, head: int, limit: int | None) -> Iterator[RecordedEvent]:
        remaining = limit
        while after < head and (remaining is None or remaining > 0):
            page = (
                limits.read_page_count_max
                if remaining is None
                else min(remaining, limits.read_page_count_max)
            )
            # a position range of one page (fewer rows where rolled-back commits left holes):
            # the index range scan stays one page long however long the log is
            upto = min(head, after + page)
            rows = self._rows(self._sql.all_page, [after, upto, page])
            yield from rows
            after = upto
            if remaining is not None:
                remaining -= len(rows)

    def read_commit(self, commit_id: str) -> list[RecordedEvent]:
        self._check_open()
        check_id_text(commit_id, what="commit id", chars_max=limits.commit_id_chars_max)
        return self._rows(self._sql.commit_events, [commit_id])

    def _read_positions(self, first: int, last: int) -> list[RecordedEvent]:
        return self._rows(self._sql.position_range, [first, last])

    def _rows(self, query: str, params: list[Any]) -> list[RecordedEvent]:
        return [RecordedEvent(*row) for row in self._fetch(query, params)]

    def _one(self, query: str, params: list[Any] | None = None) -> Any:
        return self._fetch(query, params)[0][0]

    def _fetch(self, query: str, params: list[Any] | None) -> list[tuple[Any, ...]]:
        """Run a read; a connection that broke (a restarted server, a terminated backend) is
        replaced and the read tried again, READ_ATTEMPTS times in all."""
        for attempt in range(READ_ATTEMPTS):
            self._check_open()
            try:
                with self._connections.use() as conn:
                    return conn.execute(query, params, binary=True).fetchall()
            except StoreUnavailable:
                if attempt == READ_ATTEMPTS - 1 or self.closed:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def stream_version(self, stream: str) -> int:
        return self._one(self._sql.stream_version, [stream])

    def head_position(self) -> int:
        return self._one(self._sql.head)

    def streams(self) -> Iterator[StreamInfo]:
        self._check_open()
        return self._streams()

    def _streams(self) -> Iterator[StreamInfo]:
        after = ""
        while True:
            rows = self._fetch(self._sql.streams_page, [after, limits.read_page_count_max])
            yield from (StreamInfo(*row) for row in rows)
            if len(rows) < limits.read_page_count_max:
                return
            after = rows[-1][0]

    # -- waiting ----------------------------------------------------------------------------

    def wait_for_append(self, after: int, timeout: float) -> bool:
        if self.closed:
            return False
        listener = self._listen()
        deadline = time.monotonic() + min(timeout, limits.wait_seconds_max)
        while not self.closed:
            generation = listener.generation
            if self.head_position() > after:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            listener.wait(
                generation,
                min(remaining, limits.subscription_poll_seconds_max),
                lambda: self.closed,
            )
        return False

    def _notify(self) -> None:
        """Wake followers: this process's at once, other processes' by a NOTIFY that a
        background thread sends (never in the append's transaction: see docs/postgres.md)."""
        if self._listener is not None:
            self._listener.bump()
        notifier = self._notifier
        if notifier is None:
            with self._notifier_lock:
                if self._notifier is None:
                    self._notifier = Notifier(self.target, self._sql.channel)
                notifier = self._notifier
        notifier.poke()

    def _listen(self) -> Listener:
        if self._listener is None:
            self._listener = Listener(self.target, self._sql.channel)
        return self._listener

    # -- the rest ---------------------------------------------------------------------------

    def _open_snapshots(self) -> SnapshotStore:
        return PostgresSnapshots(self._connections, self.schema, readonly=self.readonly)

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        pool = self._connections.pool.get_stats()
        stats.update(
            schema=self.schema,
            server=self.target.where,
            pool_size=pool.get("pool_size"),
            pool_available=pool.get("pool_available"),
        )
        return stats

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._listener is not None:
            self._listener.close()
        if self._notifier is not None:
            self._notifier.close()
        self._close_snapshots()
        self._connections.close()


class _Row(msgspec.Struct):
    """One event in the append's JSON parameter (its stream goes in a text[] of its own)."""

    t: str
    d: dict[str, Any]
    m: dict[str, Any]
    o: datetime | None
    i: str
    v: int


def _row(e: NewEvent) -> _Row:
    return _Row(e.type, e.data, e.metadata, e.occurred_at, e.id or new_event_id(), e.schema_version)


def _append_params(prepared: PreparedCommit, now: datetime | None = None) -> list[Any]:
    events = prepared.events
    expected_streams = list(prepared.expected)
    codes = []
    for want in prepared.expected.values():
        if want is ANY:
            codes.append(-1)
        elif want is EXISTS:
            codes.append(-2)
        elif want is NO_STREAM:
            codes.append(0)
        else:
            codes.append(want)
    return [
        [e.stream for e in events],
        _json.encode([_row(e) for e in events]).decode(),
        expected_streams,
        codes,
        prepared.commit_id,
        prepared.digest if prepared.commit_id is not None else None,
        _json.encode(prepared.metadata).decode() if prepared.metadata else None,
        now,
    ]


class _Statements:
    """The store's SQL, with its schema filled in, rendered to text once."""

    def __init__(self, schema: str) -> None:
        self._compose(schema)
        for name, value in list(vars(self).items()):
            if isinstance(value, sql.Composable):
                setattr(self, name, value.as_string())

    def _compose(self, schema: str) -> None:
        s = sql.Identifier(schema)
        events = sql.SQL("{}.events").format(s)
        cols = sql.SQL(_COLUMNS)
        safe = sql.SQL(SAFE)
        self.channel = f"eventbook_{schema}"
        self.append = sql.SQL(
            "SELECT * FROM {}.append(%b::text[], %b::json, %b::text[], %b::bigint[], "
            "%b::text, %b::bytea, %b::text, %b::timestamptz)"
        ).format(s)
        self.stream_version = sql.SQL(
            "SELECT coalesce(max(version), 0) FROM {} WHERE stream = %s"
        ).format(events)
        self.head = sql.SQL("SELECT coalesce(max(position), 0) FROM {} WHERE {}").format(
            events, safe
        )
        self.stream_range = sql.SQL(
            "SELECT {} FROM {} WHERE stream = %s AND version BETWEEN %s AND %s ORDER BY version"
        ).format(cols, events)
        self.all_page = sql.SQL(
            "SELECT {} FROM {} WHERE position > %s AND position <= %s AND {} "
            "ORDER BY position LIMIT %s"
        ).format(cols, events, safe)
        self.position_range = sql.SQL(
            "SELECT {} FROM {} WHERE position BETWEEN %s AND %s ORDER BY position"
        ).format(cols, events)
        self.commit_events = sql.SQL(
            "SELECT {} FROM {} AS e JOIN {}.commits AS c "
            "ON e.position BETWEEN c.first_position AND c.last_position "
            "WHERE c.commit_id = %s ORDER BY e.position"
        ).format(sql.SQL(", ".join("e." + c for c in _COLUMNS.split(", "))), events, s)
        # every stream, a page at a time, by skipping from one stream id to the next in the
        # (stream, version) index, then its last version and that event's position
        self.streams_page = sql.SQL(
            "WITH RECURSIVE ids(stream) AS ("
            " (SELECT stream FROM {ev} WHERE stream > %s ORDER BY stream LIMIT 1)"
            " UNION ALL"
            " SELECT (SELECT e.stream FROM {ev} AS e WHERE e.stream > ids.stream"
            "         ORDER BY e.stream LIMIT 1)"
            " FROM ids WHERE ids.stream IS NOT NULL)"
            " SELECT ids.stream, last.version, last.position FROM ids,"
            " LATERAL (SELECT e.version, e.position FROM {ev} AS e WHERE e.stream = ids.stream"
            "          ORDER BY e.version DESC LIMIT 1) AS last"
            " WHERE ids.stream IS NOT NULL LIMIT %s"
        ).format(ev=events)


OPTIONS = ("schema", "readonly", "pool_size", "clock")


def open_postgres(url: str, **options: Any) -> PostgresStore:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidInput(
            f"unknown option(s) {', '.join(unknown)}; a postgresql:// store takes "
            + ", ".join(f"{name}=" for name in OPTIONS)
        )
    return PostgresStore(url, **options)


__all__ = ["PostgresStore", "open_postgres"]
