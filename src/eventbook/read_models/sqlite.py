"""SQL read models in SQLite (stdlib): the embedded default, in `read_models.sqlite` beside the
store's files (or a given path; memory stores use a private in-memory database).

Each generation of a projection has its own physical tables, `{table}__{projection}__g{n}`; the
plain table names are views on the active generation, re-pointed in the same transaction that
switches generations. The checkpoints live in `eventbook_projections`, written in the same
transaction as the handler's changes. WAL with `synchronous=NORMAL`: a crash of the process
loses nothing committed; a power loss may lose the last commits, rows and checkpoint together,
which are then applied again.

Handlers get a `SqliteTx`: `tx.execute(sql, params)` where `{table}` in the SQL names the
generation's physical table.

A table whose declaration starts with `fts5(` (e.g. `"fts5(note, order_id UNINDEXED)"`) is an
FTS5 full-text virtual table (`CREATE VIRTUAL TABLE ... USING fts5(...)`); see
`eventbook.read_models.fts` for searching it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventbook.projections.model import Generation, Projection
from eventbook.read_models.base import AlreadyApplied, Batch, ReadModel, TableSql

FILE = "read_models.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eventbook_projections (
    name TEXT NOT NULL, generation INTEGER NOT NULL, version INTEGER NOT NULL,
    position INTEGER NOT NULL DEFAULT 0, active INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'running', error TEXT NOT NULL DEFAULT '',
    failed_position INTEGER NOT NULL DEFAULT 0, updated_at TEXT,
    PRIMARY KEY (name, generation)
);
"""
_COLUMNS = "name, generation, version, position, active, status, error, failed_position, updated_at"


def physical(table: str, name: str, generation: int) -> str:
    """The physical table of a projection's generation; the plain name is a view on it."""
    return f"{table}__{name}__g{generation}"


def create_sql(table: str, columns: str) -> str:
    """The statement that makes a generation's table: a column list makes a plain table; a
    declaration starting with `fts5(` an FTS5 full-text virtual table."""
    if columns.lstrip().lower().startswith("fts5("):
        return f"CREATE VIRTUAL TABLE {table} USING {columns.strip()}"
    return f"CREATE TABLE {table} ({columns})"


def _view_of(table: str, name: str) -> str:
    return table.rsplit(f"__{name}__g", 1)[0]


class SqliteTx(TableSql):
    """What a handler writes through: SQL with `{table}` resolved to this generation."""

    def __init__(self, db: sqlite3.Connection, tables: dict[str, str]) -> None:
        super().__init__(tables)
        self.db = db

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.db.execute(self.sql(sql), params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        return self.db.executemany(self.sql(sql), rows)


class SqliteReadModel(ReadModel):
    kind = "sqlite"

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = str(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        if readonly:
            self.db = sqlite3.connect(
                f"file:{self.path}?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
        else:
            uri = self.path.startswith("file:")
            self.db = sqlite3.connect(
                self.path, uri=uri, check_same_thread=False, isolation_level=None
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)

    # -- the runner's side -------------------------------------------------------------------

    def generations(self, name: str) -> list[Generation]:
        with self._lock:
            try:
                rows = self.db.execute(
                    f"SELECT {_COLUMNS} FROM eventbook_projections WHERE name=? "
                    "ORDER BY generation",
                    (name,),
                ).fetchall()
            except sqlite3.OperationalError:  # read-only, nothing made yet
                return []
        return [
            Generation(
                r[0],
                r[1],
                r[2],
                r[3],
                bool(r[4]),
                r[5],
                r[6],
                r[7],
                datetime.fromisoformat(r[8]) if r[8] else None,
            )
            for r in rows
        ]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def create_generation(self, projection: Projection, *, active: bool) -> Generation:
        with self._transaction() as db:
            row = db.execute(
                "SELECT max(generation) FROM eventbook_projections WHERE name=?",
                (projection.name,),
            ).fetchone()
            generation = (row[0] or 0) + 1
            tables = self._tables(projection, generation)
            for table, columns in projection.tables.items():
                db.execute(f"DROP TABLE IF EXISTS {tables[table]}")
                db.execute(create_sql(tables[table], columns))
            if projection.setup is not None:
                projection.setup(SqliteTx(db, tables))
            db.execute(
                "INSERT INTO eventbook_projections (name, generation, version, active, "
                "updated_at) VALUES (?, ?, ?, 0, ?)",
                (projection.name, generation, projection.version, _now()),
            )
            if active:
                self._activate(db, projection.name, generation)
        return self.generations(projection.name)[-1]

    def _tables(self, projection: Projection, generation: int) -> dict[str, str]:
        return {t: physical(t, projection.name, generation) for t in projection.tables}

    def apply(
        self, projection: Projection, generation: int, batch: Batch, after: int, through: int
    ) -> None:
        with self._transaction() as db:
            # the checkpoint first: a batch another runner applied already must not reach the
            # handler, whose second run could fail (a duplicate key) and stop the projection
            updated = db.execute(
                "UPDATE eventbook_projections SET position=?, updated_at=? "
                "WHERE name=? AND generation=? AND position=?",
                (through, _now(), projection.name, generation, after),
            ).rowcount
            if updated != 1:  # another runner applied these already: keep nothing of ours
                raise AlreadyApplied(projection.name, generation, after)
            projection.apply_batch(SqliteTx(db, self._tables(projection, generation)), batch)

    def activate(self, name: str, generation: int) -> None:
        with self._transaction() as db:
            self._activate(db, name, generation)

    def _activate(self, db: sqlite3.Connection, name: str, generation: int) -> None:
        tables = self._physical_tables(db, name, generation)
        for old in db.execute(
            "SELECT generation FROM eventbook_projections WHERE name=? AND generation != ?",
            (name, generation),
        ).fetchall():
            for table in self._physical_tables(db, name, old[0]):
                db.execute(f"DROP VIEW IF EXISTS {_view_of(table, name)}")
                db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(
            "DELETE FROM eventbook_projections WHERE name=? AND generation != ?", (name, generation)
        )
        for table in tables:
            view = _view_of(table, name)
            db.execute(f"DROP VIEW IF EXISTS {view}")
            db.execute(f"CREATE VIEW {view} AS SELECT * FROM {table}")
        db.execute(
            "UPDATE eventbook_projections SET active=1 WHERE name=? AND generation=?",
            (name, generation),
        )

    def _physical_tables(self, db: sqlite3.Connection, name: str, generation: int) -> list[str]:
        """The tables of a generation, found by the naming rule in sqlite_master."""
        suffix = f"__{name}__g{generation}"
        return [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE ?",
                (f"%{suffix}",),
            ).fetchall()
            if r[0].endswith(suffix)
        ]

    def drop(self, name: str, generation: int | None = None) -> None:
        with self._transaction() as db:
            for (gen,) in db.execute(
                "SELECT generation FROM eventbook_projections WHERE name=? "
                "AND (? IS NULL OR generation=?)",
                (name, generation, generation),
            ).fetchall():
                for table in self._physical_tables(db, name, gen):
                    db.execute(f"DROP VIEW IF EXISTS {_view_of(table, name)}")
                    db.execute(f"DROP TABLE IF EXISTS {table}")
                db.execute(
                    "DELETE FROM eventbook_projections WHERE name=? AND generation=?", (name, gen)
                )

    def mark_failed(self, name: str, generation: int, position: int, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE eventbook_projections SET status='stopped', error=?, failed_position=?, "
                "updated_at=? WHERE name=? AND generation=?",
                (error, position, _now(), name, generation),
            )

    def clear_failure(self, name: str, generation: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE eventbook_projections SET status='running', error='', failed_position=0 "
                "WHERE name=? AND generation=?",
                (name, generation),
            )

    def is_transient(self, error: BaseException) -> bool:
        text = str(error).lower()
        return isinstance(error, sqlite3.OperationalError) and (
            "locked" in text or "busy" in text or "disk i/o" in text
        )

    def drift(self, projection: Projection, generation: int) -> str | None:
        for table, columns in projection.tables.items():
            name = physical(table, projection.name, generation)
            with self._lock:
                row = self.db.execute(
                    "SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (name,)
                ).fetchone()
            want = create_sql(name, columns)
            if row is None:
                return f"table {table} ({name}) is missing"
            if " ".join(row[0].split()) != " ".join(want.split()):
                return f"table {table} ({name}) was altered: expected {want!r}, found {row[0]!r}"
        return None

    # -- the query side -----------------------------------------------------------------------

    def query(
        self,
        sql: str,
        params: Any = (),
        *,
        min_position: int | None = None,
        projections: Sequence[str] = (),
        timeout: float = 5.0,
    ) -> list[tuple]:
        """Run a read query against the active generations' views. With `min_position` (the
        position an append returned) it first waits until the named projections have applied
        it: read-your-writes, bounded by `timeout` (then `eb.Timeout`)."""
        if min_position is not None:
            self.wait_for(projections, min_position, timeout)
        with self._lock:
            return self.db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self.db.close()


def _now() -> str:
    return datetime.now(UTC).isoformat()
