"""The embedded log's snapshots: a SQLite table in `snapshots.sqlite` beside the segments.

Written with `synchronous=NORMAL` in WAL mode: a snapshot lost in a crash is replaced by a
longer replay, so it is not worth a sync per save. Times are stored as integer microseconds
since the epoch so the time machine's bounds are plain integer comparisons.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventbook.errors import StoreReadOnly
from eventbook.store.snapshots import Criteria, Snapshot, SnapshotStore

FILE = "snapshots.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    key TEXT NOT NULL, position INTEGER NOT NULL, code_version TEXT NOT NULL,
    version INTEGER NOT NULL, recorded_us INTEGER, max_occurred_us INTEGER,
    schema_version INTEGER NOT NULL, state BLOB NOT NULL, state_hash TEXT NOT NULL,
    label TEXT NOT NULL, taken_us INTEGER,
    PRIMARY KEY (key, code_version, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = (
    "key, position, code_version, version, recorded_us, max_occurred_us, schema_version, "
    "state, state_hash, label, taken_us"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(t: datetime | None) -> int | None:
    return None if t is None else (t - _EPOCH) // timedelta(microseconds=1)


def _time(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _row(s: Snapshot) -> tuple[object, ...]:
    return (
        s.key,
        s.position,
        s.code_version,
        s.version,
        _us(s.recorded_at),
        _us(s.max_occurred_at),
        s.schema_version,
        s.state,
        s.state_hash,
        s.label,
        _us(s.taken_at),
    )


def _snapshot(r: tuple) -> Snapshot:
    return Snapshot(
        key=r[0],
        position=r[1],
        code_version=r[2],
        version=r[3],
        recorded_at=_time(r[4]),
        max_occurred_at=_time(r[5]),
        schema_version=r[6],
        state=bytes(r[7]),
        state_hash=r[8],
        label=r[9],
        taken_at=_time(r[10]),
    )


class SqliteSnapshots(SnapshotStore):
    def __init__(self, root: Path, *, readonly: bool) -> None:
        self.path = root / FILE
        self.readonly = readonly
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None:
            if self.readonly:
                if not self.path.exists():
                    return None
                self._db = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                self._db = db
        return self._db

    def _writable(self) -> sqlite3.Connection:
        if self.readonly:
            raise StoreReadOnly(str(self.path.parent), "it was opened read-only")
        db = self._conn()
        assert db is not None
        return db

    def save(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._writable().execute(
                f"INSERT OR REPLACE INTO snapshots ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                _row(snapshot),
            )

    def _select(self, where: str, args: tuple) -> list[Snapshot]:
        with self._lock:
            db = self._conn()
            if db is None:
                return []
            try:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM snapshots WHERE {where}", args
                ).fetchall()
            except sqlite3.OperationalError:  # a read-only view of a table not made yet
                return []
        return [_snapshot(r) for r in rows]

    def candidates(self, key: str, code_version: str) -> Iterator[Snapshot]:
        return iter(
            self._select("key=? AND code_version=? ORDER BY position DESC", (key, code_version))
        )

    def latest(self, key: str, code_version: str, criteria: Criteria) -> Snapshot | None:
        where = ["key=?", "code_version=?"]
        args: list[object] = [key, code_version]
        for column, bound in (
            ("version", criteria.version_max),
            ("position", criteria.position_max),
            ("recorded_us", _us(criteria.recorded_max)),
            ("max_occurred_us", _us(criteria.occurred_max)),
        ):
            if bound is not None:
                where.append(f"{column} <= ?")
                args.append(bound)
        found = self._select(" AND ".join(where) + " ORDER BY position DESC LIMIT 1", tuple(args))
        return found[0] if found else None

    def all(self, key: str | None = None) -> Iterator[Snapshot]:
        if key is None:
            return iter(self._select("1 ORDER BY key, position", ()))
        return iter(self._select("key=? ORDER BY position", (key,)))

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            db = self._conn()
            if db is None:
                return None
            try:
                row = db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
            except sqlite3.OperationalError:
                return None
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            self._writable().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
