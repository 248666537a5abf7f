"""SQL read models in PostgreSQL (projections with `target="postgres"`), with each batch's rows
and the checkpoint in one transaction.

They live in a schema of their own (default: the store's schema with `_rm` after it, in the
store's database when the store is PostgreSQL). As on SQLite, each generation of a projection
has its own physical tables, `{table}__{projection}__g{n}`, and the plain table names are views
on the active generation, re-pointed in the transaction that switches generations. The
checkpoints live in `eventbook_projections` in that schema.

Handlers get a `PostgresTx`: `tx.execute(sql, params)` with psycopg's `%s` placeholders (write
a literal `%` as `%%`), where `{table}` names the generation's physical table. A batch's
statements are sent pipelined (psycopg's pipeline mode: one round trip for many statements);
the checkpoint is moved, and checked, first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from eventbook.errors import InvalidInput, StoreUnavailable
from eventbook.projections.model import Generation, Projection
from eventbook.read_models.base import AlreadyApplied, Batch, ReadModel, TableSql

IDENTIFIER_BYTES_MAX = 63  # PostgreSQL truncates longer names
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_COLUMNS = "name, generation, version, position, active, status, error, failed_position, updated_at"


def physical(table: str, name: str, generation: int) -> str:
    """The physical table of a projection's generation; the plain name is a view on it."""
    found = f"{table}__{name}__g{generation}".lower()
    if len(found.encode()) > IDENTIFIER_BYTES_MAX:
        raise InvalidInput(
            f"table {table!r} of projection {name!r} makes the name {found!r}, longer than "
            f"PostgreSQL's {IDENTIFIER_BYTES_MAX} bytes; use a shorter table or projection name"
        )
    return found


class PostgresTx(TableSql):
    """What a handler writes through: SQL with `{table}` resolved to this generation's table,
    qualified by the read-model schema."""

    def __init__(self, conn: psycopg.Connection, schema: str, tables: dict[str, str]) -> None:
        super().__init__(tables)
        self.conn = conn
        self.schema = schema

    def qualified(self, physical: str) -> str:
        return f'"{self.schema}"."{physical}"'

    def execute(self, text: str, params: Any = None) -> psycopg.Cursor:
        return self.conn.execute(self.sql(text), params)  # type: ignore[arg-type]

    def executemany(self, text: str, rows: Any) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(self.sql(text), rows)  # type: ignore[arg-type]


class PostgresReadModel(ReadModel):
    kind = "postgres"

    def __init__(self, url: str, schema: str = "eventbook_rm", *, readonly: bool = False) -> None:
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidInput(
                f"read-model schema {schema!r} is not allowed: 1 to 63 lowercase ASCII letters, "
                "digits and _, not starting with a digit"
            )
        self.url = url
        self.schema = schema
        self.readonly = readonly
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._s = sql.Identifier(schema)
        if not readonly:
            with self.conn.transaction():
                self.conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    [f"eventbook-read-models:{schema}"],
                )
                self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._s))
                self.conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.eventbook_projections ("
                        " name text NOT NULL, generation integer NOT NULL,"
                        " version integer NOT NULL, position bigint NOT NULL DEFAULT 0,"
                        " active boolean NOT NULL DEFAULT false,"
                        " status text NOT NULL DEFAULT 'running', error text NOT NULL DEFAULT '',"
                        " failed_position bigint NOT NULL DEFAULT 0, updated_at timestamptz,"
                        " shape text NOT NULL DEFAULT '', PRIMARY KEY (name, generation))"
                    ).format(self._s)
                )

    @property
    def conn(self) -> psycopg.Connection:
        """The read model's connection, made again when the last one broke (a restarted
        server, a terminated backend): the runner treats that error as transient and tries
        the batch again, on a new connection."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(
                    libpq_url(self.url), autocommit=True, connect_timeout=10
                )
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(_where(self.url), exc) from None
        return self._conn

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    # -- the runner's side -------------------------------------------------------------------

    def _reading(self, read: Callable[[psycopg.Connection], Any]) -> Any:
        """Run a read; on a connection that broke since its last use, once more on a new one."""
        with self._lock:
            try:
                return read(self.conn)
            except psycopg.OperationalError:
                if self._conn is None or not self._conn.broken:
                    raise
            return read(self.conn)

    def generations(self, name: str) -> list[Generation]:
        query = self._q(
            f"SELECT {_COLUMNS} FROM {{s}}.eventbook_projections WHERE name = %s "
            "ORDER BY generation"
        )
        try:
            rows = self._reading(lambda conn: conn.execute(query, [name]).fetchall())
        except psycopg.errors.UndefinedTable:  # read-only, nothing made yet
            return []
        return [Generation(*row) for row in rows]

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        with self._lock:
            conn = self.conn
            with conn.transaction():
                yield conn

    def create_generation(self, projection: Projection, *, active: bool) -> Generation:
        with self._transaction() as conn:
            self._lock_projection(conn, projection.name)
            row = conn.execute(
                self._q(
                    "SELECT max(generation), max(generation) FILTER (WHERE active) "
                    "FROM {s}.eventbook_projections WHERE name = %s"
                ),
                [projection.name],
            ).fetchone()
            if active and row[1] is not None:
                # another runner made the first generation between our look and this lock
                return next(g for g in self.generations(projection.name) if g.active)
            generation = (row[0] or 0) + 1
            tables = self._tables(projection, generation)
            for table, columns in projection.tables.items():
                name = sql.Identifier(self.schema, tables[table])
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
                conn.execute(sql.SQL("CREATE TABLE {} (" + columns + ")").format(name))
            if projection.setup is not None:
                projection.setup(PostgresTx(conn, self.schema, tables))
            conn.execute(
                self._q(
                    "INSERT INTO {s}.eventbook_projections (name, generation, version, "
                    "updated_at, shape) VALUES (%s, %s, %s, now(), %s)"
                ),
                [
                    projection.name,
                    generation,
                    projection.version,
                    self._shape(conn, tables.values()),
                ],
            )
            if active:
                self._activate(conn, projection.name, generation)
        return self.generations(projection.name)[-1]

    def _lock_projection(self, conn: psycopg.Connection, name: str) -> None:
        """Runners in other processes take turns changing a projection's generations."""
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"eventbook-projection:{self.schema}:{name}"],
        )

    def _tables(self, projection: Projection, generation: int) -> dict[str, str]:
        return {t: physical(t, projection.name, generation) for t in projection.tables}

    def apply(
        self, projection: Projection, generation: int, batch: Batch, after: int, through: int
    ) -> None:
        with self._transaction() as conn:
            # the checkpoint first: a batch another runner applied already must not reach the
            # handler, whose second run could fail (a duplicate key) and stop the projection
            updated = conn.execute(
                self._q(
                    "UPDATE {s}.eventbook_projections SET position = %s, updated_at = now() "
                    "WHERE name = %s AND generation = %s AND position = %s"
                ),
                [through, projection.name, generation, after],
            ).rowcount
            if updated != 1:
                raise AlreadyApplied(projection.name, generation, after)
            tx = PostgresTx(conn, self.schema, self._tables(projection, generation))
            with conn.pipeline():
                projection.apply_batch(tx, batch)

    def activate(self, name: str, generation: int) -> None:
        with self._transaction() as conn:
            self._activate(conn, name, generation)

    def _activate(self, conn: psycopg.Connection, name: str, generation: int) -> None:
        self._lock_projection(conn, name)
        for (old,) in conn.execute(
            self._q(
                "SELECT generation FROM {s}.eventbook_projections "
                "WHERE name = %s AND generation <> %s"
            ),
            [name, generation],
        ).fetchall():
            self._drop_tables(conn, name, old)
        conn.execute(
            self._q("DELETE FROM {s}.eventbook_projections WHERE name = %s AND generation <> %s"),
            [name, generation],
        )
        suffix = f"__{name}__g{generation}".lower()
        for table in self._physical_tables(conn, name, generation):
            view = sql.Identifier(self.schema, table[: -len(suffix)])
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
            conn.execute(
                sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                    view, sql.Identifier(self.schema, table)
                )
            )
        conn.execute(
            self._q(
                "UPDATE {s}.eventbook_projections SET active = true "
                "WHERE name = %s AND generation = %s"
            ),
            [name, generation],
        )

    def _physical_tables(self, conn: psycopg.Connection, name: str, generation: int) -> list[str]:
        suffix = f"__{name}__g{generation}".lower()
        return [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
                [self.schema],
            )
            if row[0].endswith(suffix)
        ]

    def _drop_tables(self, conn: psycopg.Connection, name: str, generation: int) -> None:
        """Drop a generation's tables, and the views on them if they are the active ones."""
        for table in self._physical_tables(conn, name, generation):
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.schema, table)
                )
            )

    def drop(self, name: str, generation: int | None = None) -> None:
        with self._transaction() as conn:
            self._lock_projection(conn, name)
            for (gen,) in conn.execute(
                self._q(
                    "SELECT generation FROM {s}.eventbook_projections WHERE name = %s "
                    "AND (%s::integer IS NULL OR generation = %s::integer)"
                ),
                [name, generation, generation],
            ).fetchall():
                self._drop_tables(conn, name, gen)
                conn.execute(
                    self._q(
                        "DELETE FROM {s}.eventbook_projections WHERE name = %s AND generation = %s"
                    ),
                    [name, gen],
                )

    def mark_failed(self, name: str, generation: int, position: int, error: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                self._q(
                    "UPDATE {s}.eventbook_projections SET status = 'stopped', error = %s, "
                    "failed_position = %s, updated_at = now() WHERE name = %s AND generation = %s"
                ),
                [error, position, name, generation],
            )

    def clear_failure(self, name: str, generation: int) -> None:
        with self._transaction() as conn:
            conn.execute(
                self._q(
                    "UPDATE {s}.eventbook_projections SET status = 'running', error = '', "
                    "failed_position = 0 WHERE name = %s AND generation = %s"
                ),
                [name, generation],
            )

    def is_transient(self, error: BaseException) -> bool:
        return isinstance(error, psycopg.OperationalError | StoreUnavailable)

    def _shape(self, conn: psycopg.Connection, tables: Any) -> str:
        """The columns of a generation's tables (name, type, nullability), to find drift."""
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = ANY(%s) "
            "ORDER BY table_name, ordinal_position",
            [self.schema, list(tables)],
        ).fetchall()
        return "; ".join(" ".join(r) for r in rows)

    def drift(self, projection: Projection, generation: int) -> str | None:
        tables = self._tables(projection, generation)
        query = self._q(
            "SELECT shape FROM {s}.eventbook_projections WHERE name = %s AND generation = %s"
        )

        def read(conn: psycopg.Connection) -> tuple[Any, set[str], str]:
            row = conn.execute(query, [projection.name, generation]).fetchone()
            existing = set(self._physical_tables(conn, projection.name, generation))
            return row, existing, self._shape(conn, tables.values())

        row, existing, now = self._reading(read)
        for table, name in tables.items():
            if name not in existing:
                return f"table {table} ({self.schema}.{name}) is missing"
        if row is not None and row[0] != now:
            return (
                f"the tables of {projection.name} generation {generation} were altered: "
                f"expected columns {row[0]!r}, found {now!r}"
            )
        return None

    # -- the query side -----------------------------------------------------------------------

    def query(
        self,
        text: str,
        params: Any = None,
        *,
        min_position: int | None = None,
        projections: Sequence[str] = (),
        timeout: float = 5.0,
    ) -> list[tuple]:
        """Run a read query (plain table names are the active generations' views, in this
        read model's schema: write `{schema}.table` as `schema.table` or set nothing, the
        search path is the schema). With `min_position` (the position an append returned) it
        first waits until the named projections have applied it: read-your-writes."""
        if min_position is not None:
            self.wait_for(projections, min_position, timeout)

        def read(conn: psycopg.Connection) -> list[tuple]:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(self._s))
                return conn.execute(text, params).fetchall()  # type: ignore[arg-type]

        return self._reading(read)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


def libpq_url(url: str) -> str:
    """A store URL without eventbook's own `schema` parameter, which libpq does not know."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _where(url: str) -> str:
    try:
        info = psycopg.conninfo.conninfo_to_dict(libpq_url(url))
    except psycopg.Error:
        return "PostgreSQL"
    return f"PostgreSQL at {info.get('host') or 'localhost'}:{info.get('port') or 5432}"
