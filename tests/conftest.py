"""Fixtures shared by the test folders: throwaway PostgreSQL and NATS servers, started on first
use (or the ones EVENTBOOK_TEST_PG_URL and EVENTBOOK_TEST_NATS_URL name), and fresh schemas
and JetStream streams on them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import eventbook as eb
from eventbook.testing.nats_server import existing_nats_url, nats_server
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


NATS_MAX_PAYLOAD = 8 * 1024 * 1024  # the largest event (limits.event_data_bytes_max) fits


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """The URL of the session's JetStream server (max_payload 8 MiB), or EVENTBOOK_TEST_NATS_URL."""
    url = existing_nats_url()
    if url:
        yield url
        return
    with nats_server(max_payload=NATS_MAX_PAYLOAD) as server:
        yield server.url


@pytest.fixture(scope="session")
def drop_nats_stream(nats_url: str) -> Callable[[str], None]:
    """Deletes a store's JetStream stream (tests clean up the stores they made)."""
    from eventbook.backends.nats.store import delete_stream

    return lambda name: delete_stream(nats_url, name)


@pytest.fixture
def open_test_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], eb.EventStore]]:
    """Opens a fresh store of a kind: "memory", "log" (sync none, under tmp_path) or "nats"
    (a new JetStream stream on the session's server); closes and deletes them afterwards."""
    opened: list[eb.EventStore] = []
    streams: list[str] = []

    def open_store(kind: str) -> eb.EventStore:
        if kind == "memory":
            store = eb.open_store("memory://")
        elif kind == "log":
            store = eb.open_store(tmp_path / f"store-{len(opened)}", sync="none")
        elif kind == "nats":
            streams.append(f"t_{uuid.uuid4().hex[:16]}")
            store = eb.open_store(request.getfixturevalue("nats_url"), stream=streams[-1])
        else:
            raise ValueError(f"no test store of kind {kind!r}")
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
    if streams:
        drop = request.getfixturevalue("drop_nats_stream")
        for name in streams:
            drop(name)
