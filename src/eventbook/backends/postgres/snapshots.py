"""The PostgreSQL store's snapshots: the `snapshots` and `meta` tables of its schema
(migrations/003_snapshots.sql), through the store's connection pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from psycopg import sql

from eventbook.backends.postgres.connection import Connections
from eventbook.errors import StoreReadOnly
from eventbook.store.snapshots import Criteria, Snapshot, SnapshotStore

_COLUMNS = (
    "key, position, code_version, version, recorded_at, max_occurred_at, schema_version, "
    "state, state_hash, label, taken_at"
)


class PostgresSnapshots(SnapshotStore):
    def __init__(self, connections: Connections, schema: str, *, readonly: bool) -> None:
        self._connections = connections
        self._schema = sql.Identifier(schema)
        self.readonly = readonly

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._schema)

    def _run(self, query: sql.Composed, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._connections.use() as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def _writable(self) -> None:
        if self.readonly:
            raise StoreReadOnly(self._connections.target.where, "it was opened read-only")

    def save(self, snapshot: Snapshot) -> None:
        self._writable()
        self._run(
            self._q(
                f"INSERT INTO {{s}}.snapshots ({_COLUMNS}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (key, code_version, position) DO UPDATE SET "
                "version = EXCLUDED.version, recorded_at = EXCLUDED.recorded_at, "
                "max_occurred_at = EXCLUDED.max_occurred_at, "
                "schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, "
                "state_hash = EXCLUDED.state_hash, label = EXCLUDED.label, "
                "taken_at = EXCLUDED.taken_at"
            ),
            [
                snapshot.key,
                snapshot.position,
                snapshot.code_version,
                snapshot.version,
                snapshot.recorded_at,
                snapshot.max_occurred_at,
                snapshot.schema_version,
                snapshot.state,
                snapshot.state_hash,
                snapshot.label,
                snapshot.taken_at,
            ],
        )

    def _select(self, where: str, params: list[Any]) -> list[Snapshot]:
        rows = self._run(self._q(f"SELECT {_COLUMNS} FROM {{s}}.snapshots WHERE {where}"), params)
        return [
            Snapshot(
                key=r[0],
                position=r[1],
                code_version=r[2],
                version=r[3],
                recorded_at=r[4],
                max_occurred_at=r[5],
                schema_version=r[6],
                state=bytes(r[7]),
                state_hash=r[8],
                label=r[9],
                taken_at=r[10],
            )
            for r in rows
        ]

    def candidates(self, key: str, code_version: str) -> Iterator[Snapshot]:
        return iter(
            self._select(
                "key = %s AND code_version = %s ORDER BY position DESC", [key, code_version]
            )
        )

    def latest(self, key: str, code_version: str, criteria: Criteria) -> Snapshot | None:
        where = ["key = %s", "code_version = %s"]
        params: list[Any] = [key, code_version]
        for column, bound in (
            ("version", criteria.version_max),
            ("position", criteria.position_max),
            ("recorded_at", criteria.recorded_max),
            ("max_occurred_at", criteria.occurred_max),
        ):
            if bound is not None:
                where.append(f"{column} <= %s")
                params.append(bound)
        found = self._select(" AND ".join(where) + " ORDER BY position DESC LIMIT 1", params)
        return found[0] if found else None

    def all(self, key: str | None = None) -> Iterator[Snapshot]:
        if key is None:
            return iter(self._select("true ORDER BY key, position", []))
        return iter(self._select("key = %s ORDER BY position", [key]))

    def get_meta(self, name: str) -> str | None:
        rows = self._run(self._q("SELECT value FROM {s}.meta WHERE name = %s"), [name])
        return rows[0][0] if rows else None

    def set_meta(self, name: str, value: str) -> None:
        self._writable()
        self._run(
            self._q(
                "INSERT INTO {s}.meta (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
            ),
            [name, value],
        )
