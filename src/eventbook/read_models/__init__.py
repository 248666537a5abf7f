"""Read-model targets for projections, each behind `ReadModel`: SQLite tables (the embedded
default), SQLite FTS5 full-text tables, and Redis key-value views."""

from __future__ import annotations

import uuid
from pathlib import Path

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


def open_read_models(
    store: EventStore, kinds: set[str], *, sqlite: str | None = None, readonly: bool = False
) -> dict[str, ReadModel]:
    """The read models a set of projections needs, opened for this store."""
    opened: dict[str, ReadModel] = {}
    if kinds & {"sqlite", "fts"}:
        model = SqliteReadModel(sqlite or sqlite_path(store), readonly=readonly)
        opened["sqlite"] = model
        if "fts" in kinds:
            opened["fts"] = model
    unknown = kinds - {"sqlite", "fts"}
    if unknown:
        raise InvalidInput(
            f"read-model targets {sorted(unknown)} are not available here; known: sqlite, fts"
        )
    return opened


__all__ = [
    "AlreadyApplied",
    "Batch",
    "ReadModel",
    "SqliteReadModel",
    "SqliteTx",
    "open_read_models",
    "sqlite_path",
]
