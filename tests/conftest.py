"""Fixtures shared by the test folders: a throwaway PostgreSQL server, started on first use
(or the one EVENTBOOK_TEST_PG_URL names), and fresh schemas on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from eventbook.testing.postgres_server import PostgresServer, existing_postgres_url, postgres_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer | None]:
    """The session's own PostgreSQL server (None when EVENTBOOK_TEST_PG_URL names one)."""
    if existing_postgres_url():
        yield None
        return
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_url(pg_server: PostgresServer | None) -> str:
    """The URL of the test PostgreSQL database."""
    return existing_postgres_url() or pg_server.url  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def drop_schema(pg_url: str) -> Callable[[str], None]:
    """Deletes a schema and everything in it (tests clean up the stores they made)."""

    def drop(name: str) -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))

    return drop
