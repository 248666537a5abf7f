"""The peer on PostgreSQL: the `eventsourcing` library 9.5.x with its PostgreSQL persistence,
configured as its users configure it.

`PERSISTENCE_MODULE=eventsourcing.postgres`, `POSTGRES_DBNAME`, `POSTGRES_HOST`,
`POSTGRES_PORT`, `POSTGRES_USER`, `POSTGRES_PASSWORD` (the throwaway server's: user
`eventbook`, no password) and `POSTGRES_SCHEMA` (a fresh schema per measurement, made here:
the library creates its table, type and index in it but not the schema itself). Nothing else,
so the library's defaults apply: a pool of 5 connections plus 10 of overflow
(`POSTGRES_POOL_SIZE`, `POSTGRES_MAX_OVERFLOW`), and each `insert_events` one pipelined
transaction of `SET LOCAL lock_timeout`, `LOCK TABLE ... IN EXCLUSIVE MODE` (writers are
serialised on the table until they commit), `NOTIFY` and the `INSERT ... RETURNING
notification_id`.

The same `Account` aggregate and `BenchApp` application as on SQLite (`peer.py`), and the same
helpers: `peer.app_appender` (the Application layer, what the ratios use), `peer.recorder_appender`
(the recorder fed ready-made `StoredEvent`s, context), `peer.load`, `peer.read_all` and
`peer.read_all_raw`.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

import peer

LABEL = peer.LABEL
RECORDER_LABEL = peer.RECORDER_LABEL
SERVER_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "commit_delay",
    "full_page_writes",
    "shared_buffers",
    "default_transaction_isolation",
)


def env(url: str, schema: str) -> dict[str, str]:
    """The library's settings for the server at `url` (postgresql://USER@HOST:PORT/DB)."""
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "eventbook",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_SCHEMA": schema,
    }


def create_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def drop_schema(url: str, schema: str) -> None:
    """Drop a measurement's schema (either engine's), so the server stays small."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def analyze(url: str) -> None:
    """`ANALYZE` every table of the database (both engines'): the planner statistics
    autovacuum would gather a while after a load."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def set_autovacuum(url: str, tables: list[str], *, enabled: bool) -> None:
    """Hold autovacuum off `tables` ("schema.table"), or let it back (the library creates its
    table with `autovacuum_enabled = true`; eventbook's has the server's default, on)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            schema, name = table.split(".")
            conn.execute(
                sql.SQL("ALTER TABLE {}.{} SET (autovacuum_enabled = {})").format(
                    sql.Identifier(schema), sql.Identifier(name), sql.SQL(str(enabled).lower())
                )
            )


def events_table(app: peer.BenchApp) -> str:
    """The application's events table, "schema.table"."""
    recorder = app.recorder
    return f"{recorder.datastore.schema}.{recorder.events_table_name}"  # type: ignore[attr-defined]


def open_app(url: str, schema: str) -> peer.BenchApp:
    """The application on a fresh schema of the server at `url`."""
    create_schema(url, schema)
    return peer.BenchApp(env=env(url, schema))


def settings(app: peer.BenchApp, url: str) -> dict[str, Any]:
    """The library's version, its pool, and the server's settings as the library's own
    connection sees them."""
    datastore = app.factory.datastore  # type: ignore[attr-defined]
    shown: dict[str, Any] = {}
    with datastore.get_connection() as conn, conn.cursor() as cursor:
        for name in SERVER_SETTINGS:
            cursor.execute(sql.SQL("SHOW {}").format(sql.Identifier(name)))
            shown[name] = next(iter(cursor.fetchone().values()))
    pool = datastore.pool
    keys = env(url, "<fresh schema per measurement>")
    return {
        "library": f"eventsourcing {version('eventsourcing')}",
        "psycopg": psycopg.__version__,
        "pool_min_size": pool.min_size,
        "pool_max_size": pool.max_size,
        "server": shown,
        "env": " ".join(f"{k}={v!r}" if not v else f"{k}={v}" for k, v in keys.items()),
        "insert": "one pipelined transaction: SET LOCAL lock_timeout; LOCK TABLE IN EXCLUSIVE "
        "MODE; NOTIFY; INSERT ... RETURNING notification_id",
    }
