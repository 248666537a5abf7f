"""Schema migrations: numbered SQL files (`migrations/NNN_name.sql`), applied in order when a
store opens, each in the same transaction as its row in `{schema}.migrations`.

Two processes opening a new store at once take turns (an advisory lock per schema). A schema
migrated by a newer eventbook (a version this one does not know) is refused with
StoreUnsupported, and nothing is changed. In the files, `@schema@` stands for the schema (a
quoted identifier), `@schema_text@` for its name as a string literal and `@latch_key@` for the
two integers of the append latch's advisory lock.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from eventbook.errors import InvalidInput, StoreUnsupported

FOLDER = Path(__file__).with_name("migrations")
SCHEMA_RULE = "1 to 48 characters: lowercase ASCII letters, digits and _, not starting with a digit"
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_FILE = re.compile(r"(\d{3})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def check_schema_name(schema: object) -> str:
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
        raise InvalidInput(f"PostgreSQL schema name {schema!r} is not allowed; use {SCHEMA_RULE}")
    return schema


def migrations() -> list[Migration]:
    found = []
    for path in FOLDER.glob("*.sql"):
        match = _FILE.fullmatch(path.name)
        if match:
            found.append(Migration(int(match[1]), match[2], path))
    return sorted(found, key=lambda m: m.version)


def latch_key(schema: str) -> tuple[int, int]:
    """The two int4 keys of the append latch's session-level advisory lock (a key space apart
    from the bigint keys of the stream and commit-id locks)."""
    return (zlib.crc32(f"eventbook:{schema}".encode()) & 0x7FFFFFFF, 1)


def render(text: str, schema: str) -> str:
    quoted = '"' + schema + '"'  # check_schema_name allows no quote or other special character
    first, second = latch_key(schema)
    return (
        text.replace("@schema_text@", "'" + schema + "'")
        .replace("@schema@", quoted)
        .replace("@latch_key@", f"{first}, {second}")
    )


def migrate(conn: psycopg.Connection, schema: str) -> int:
    """Apply the migrations the schema lacks; return its version afterwards."""
    known = migrations()
    ident = sql.Identifier(schema)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"eventbook-migrate:{schema}"]
        )
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        done = {
            row[0]
            for row in conn.execute(sql.SQL("SELECT version FROM {}.migrations").format(ident))
        }
        newest = max((m.version for m in known), default=0)
        if done and max(done) > newest:
            raise StoreUnsupported(f"postgresql schema {schema}", max(done), newest)
        for migration in known:
            if migration.version in done:
                continue
            conn.execute(render(migration.path.read_text(), schema))
            conn.execute(
                sql.SQL("INSERT INTO {}.migrations (version, name) VALUES (%s, %s)").format(ident),
                [migration.version, migration.name],
            )
        return newest
