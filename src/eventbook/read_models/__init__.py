"""Read-model targets for projections, each behind `ReadModel`: SQLite tables (the embedded
default), SQLite FTS5 full-text tables, and Redis key-value views."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from eventbook.errors import InvalidInput
from eventbook.read_models.base import AlreadyApplied, Batch, ReadModel
from eventbook.read_models.sqlite import FILE, SqliteReadModel, SqliteTx
from eventbook.store.contract import EventStore


def sqlite_path(store: EventStore) -> str:
    """Where a store's SQLite read models live: beside an embedded log's files; a private
    in-memory database for other stores."""
    root = getattr(store, "root", None)
    if isinstance(root, Path):
        return str(root / FILE)
    return f"file:eventbook-read-models-{uuid.uuid4().hex}?mode=memory&cache=shared"


REDIS_URL_ENV = "EVENTBOOK_REDIS_URL"
PG_URL_ENV = "EVENTBOOK_PG_URL"


def open_read_models(
    store: EventStore,
    kinds: set[str],
    *,
    sqlite: str | None = None,
    redis: str | None = None,
    postgres: str | None = None,
    readonly: bool = False,
) -> dict[str, ReadModel]:
    """The read models a set of projections needs, opened for this store.

    `redis`: the Redis server of "redis" projections (else `EVENTBOOK_REDIS_URL`).
    `postgres`: the database of "postgres" projections (else the store's own database when
    the store is PostgreSQL, else `EVENTBOOK_PG_URL`); their schema is the store's schema
    with `_rm` after it (`eventbook_rm` by default)."""
    unknown = kinds - {"sqlite", "fts", "redis", "postgres"}
    if unknown:
        raise InvalidInput(
            f"read-model targets {sorted(unknown)} are not available here; known: sqlite, fts, "
            "redis, postgres"
        )
    pg_url = None
    if "postgres" in kinds:
        own = store.url if store.url.startswith(("postgresql:", "postgres:")) else None
        pg_url = postgres or own or os.environ.get(PG_URL_ENV)
        if not pg_url:
            raise InvalidInput(
                "a projection with target 'postgres' needs a PostgreSQL database: use a "
                f"postgresql:// store, give postgres='postgresql://...' or set {PG_URL_ENV}"
            )
    url = None
    if "redis" in kinds:
        url = redis or os.environ.get(REDIS_URL_ENV)
        if not url:
            raise InvalidInput(
                "a projection with target 'redis' needs a Redis server: give its URL "
                f"(redis='redis://127.0.0.1:6379/0') or set {REDIS_URL_ENV}"
            )
    opened: dict[str, ReadModel] = {}
    if kinds & {"sqlite", "fts"}:
        model = SqliteReadModel(sqlite or sqlite_path(store), readonly=readonly)
        opened["sqlite"] = model
        if "fts" in kinds:
            opened["fts"] = model
    try:
        if url is not None:
            opened["redis"] = _redis_model()(url)
        if pg_url is not None:
            schema = f"{getattr(store, 'schema', 'eventbook')}_rm"
            opened["postgres"] = _postgres_model()(pg_url, schema, readonly=readonly)
    except BaseException:
        for model in opened.values():
            model.close()
        raise
    return opened


def _postgres_model() -> Any:
    """PostgresReadModel, imported on first use: psycopg is the optional `postgres` extra."""
    try:
        from eventbook.read_models.postgres import PostgresReadModel
    except ImportError as exc:
        raise InvalidInput(
            f"the PostgreSQL read model needs psycopg 3 ({exc}); pip install 'eventbook[postgres]'"
        ) from exc
    return PostgresReadModel


def _redis_model() -> Any:
    """RedisReadModel, imported on first use: redis-py is the optional `redis` extra."""
    try:
        from eventbook.read_models.redis import RedisReadModel
    except ImportError as exc:
        raise InvalidInput(
            f"the Redis read model needs redis-py ({exc}); pip install 'eventbook[redis]'"
        ) from exc
    return RedisReadModel


def __getattr__(name: str) -> Any:
    if name == "RedisReadModel":
        return _redis_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlreadyApplied",
    "Batch",
    "ReadModel",
    "RedisReadModel",
    "SqliteReadModel",
    "SqliteTx",
    "open_read_models",
    "sqlite_path",
]
