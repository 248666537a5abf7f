"""Full-text search read models: SQLite FTS5 tables in the SQLite read-model file.

A projection with `target="fts"` shares the SQLite read model (`open_read_models` maps the
kind "fts" to the same `SqliteReadModel`). A table declared with `fts5(...)` instead of a
column list is made, in each generation, as `CREATE VIRTUAL TABLE {physical} USING fts5(...)`::

    @eb.projection("order_notes", target="fts", handles=["OrderCreated"],
                   tables={"order_notes": "fts5(note, order_id UNINDEXED)"})
    def order_notes(tx, event, recorded):
        tx.execute("INSERT INTO {order_notes} (note, order_id) VALUES (?, ?)", ...)

The plain name (`order_notes`) is a view on the active generation, like any projection table.
A view of an FTS5 table can be matched column by column (`WHERE note MATCH 'wid*'`), but not as
a whole (`WHERE order_notes MATCH ...` names no column of the view) and it has no `rank`;
`search()` resolves the active generation's physical table and matches and ranks there.

A query is FTS5's syntax: words (`red widget`: both), `"a phrase"`, prefixes (`wid*`),
`OR`, `NOT`, `NEAR(a b)`, `column: word`. A query that does not parse raises
`eventbook.InvalidInput`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventbook.errors import InvalidInput
from eventbook.read_models.sqlite import SqliteReadModel, physical

query_chars_max = 1000  # characters of one search query
results_count_max = 1000  # rows one search returns at most

SYNTAX = 'words (all must occur), "a phrase", prefix*, OR, NOT, NEAR(a b), column: word'


def search(
    read_model: SqliteReadModel,
    projection: Any,
    table: str,
    query: str,
    limit: int = 20,
) -> list[tuple]:
    """The rows of a projection's FTS5 table that match `query`, best first (FTS5's `rank`,
    BM25), at most `limit`. `projection`: its name (or the `Projection`). Reads the active
    generation, so a rebuild in progress does not show and a switch is never seen half-way.

    Raises `eventbook.InvalidInput` for a query that does not parse, an empty or too long one,
    and a projection or table that has no active generation (unknown, or not run yet)."""
    name = getattr(projection, "name", projection)
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidInput(f"projection must be a projection name, got {projection!r}")
    if not isinstance(table, str) or not table.isidentifier():
        raise InvalidInput(f"table must be a table name, got {table!r}")
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput(f"a search query needs at least one word: {SYNTAX}")
    if len(query) > query_chars_max:
        raise InvalidInput(f"a search query has at most {query_chars_max} characters")
    if type(limit) is not int or not 1 <= limit <= results_count_max:
        raise InvalidInput(f"limit must be an integer 1..{results_count_max}, got {limit!r}")
    with _read(read_model) as db:
        fts = _active_table(db, name, table)
        try:
            return db.execute(
                f"SELECT * FROM {fts} WHERE {fts} MATCH ? ORDER BY rank LIMIT ?", (query, limit)
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "SQLITE_ERROR") != "SQLITE_ERROR":
                raise  # busy, locked, I/O: not the query's fault
            raise InvalidInput(
                f"cannot search {name}.{table} for {query!r}: {exc}; a query is FTS5 syntax: "
                f"{SYNTAX}"
            ) from None


def _active_table(db: sqlite3.Connection, name: str, table: str) -> str:
    try:
        row = db.execute(
            "SELECT generation FROM eventbook_projections WHERE name=? AND active=1", (name,)
        ).fetchone()
    except sqlite3.OperationalError:  # read-only, and no projection ever ran
        row = None
    if row is None:
        raise InvalidInput(
            f"projection {name} has no active read model here: not a projection of the "
            "application, or not run yet (eventbook projections run)"
        )
    fts = physical(table, name, row[0])
    found = db.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (fts,)
    ).fetchone()
    if found is None:
        raise InvalidInput(f"projection {name} has no table {table}")
    if "USING FTS5" not in " ".join(found[0].upper().split()):
        raise InvalidInput(f"table {table} of projection {name} is not an FTS5 full-text table")
    return fts


@contextmanager
def _read(model: SqliteReadModel) -> Iterator[sqlite3.Connection]:
    """One read transaction on the model's connection: the active generation and its rows come
    from the same snapshot, even while another process switches generations."""
    if not isinstance(model, SqliteReadModel):
        raise InvalidInput(
            f"full-text search needs the SQLite read model, got {type(model).__name__}"
        )
    with model._lock:
        began = not model.db.in_transaction
        if began:
            model.db.execute("BEGIN")
        try:
            yield model.db
        finally:
            if began:
                model.db.execute("COMMIT")
