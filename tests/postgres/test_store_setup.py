"""Opening a PostgreSQL store: URLs and options, schema migrations (numbered SQL files,
recorded, applied once, a newer schema refused), the seed 004 columns, a read-only store, a
server that is not there (a clear error, no traceback, from the API and the CLI), and the demo
from the CLI."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

import eventbook as eb
from eventbook.backends.postgres.migrations import migrations
from eventbook.testing.postgres_server import free_port


@pytest.fixture
def schema(drop_schema: Callable[[str], None]) -> Iterator[str]:
    name = f"setup_{random.randrange(16**8):08x}"
    yield name
    drop_schema(name)


def rows(pg_url: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def test_migrations_are_numbered_files_applied_once_and_recorded(pg_url: str, schema: str) -> None:
    known = migrations()
    assert [m.version for m in known] == list(range(1, len(known) + 1))
    with eb.open_store(pg_url, schema=schema) as store:
        store.append([eb.NewEvent("a-1", "Opened")])
    applied = rows(pg_url, f"SELECT version, name FROM {schema}.migrations ORDER BY version")
    assert applied == [(m.version, m.name) for m in known]
    with eb.open_store(pg_url, schema=schema) as store:  # opening again applies nothing
        assert store.head_position() == 1
    assert rows(pg_url, f"SELECT count(*) FROM {schema}.migrations") == [(len(known),)]


def test_a_schema_from_a_newer_eventbook_is_refused_and_left_alone(
    pg_url: str, schema: str
) -> None:
    eb.open_store(pg_url, schema=schema).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.migrations (version, name) VALUES (999, 'future')").format(
                sql.Identifier(schema)
            )
        )
    with pytest.raises(eb.StoreUnsupported, match="999"):
        eb.open_store(pg_url, schema=schema)
    assert rows(pg_url, f"SELECT max(version) FROM {schema}.migrations") == [(999,)]


def test_the_schema_comes_from_the_url_or_the_option(pg_url: str, schema: str) -> None:
    with eb.open_store(f"{pg_url}?schema={schema}") as store:
        store.append([eb.NewEvent("a-1", "Opened")])
    with eb.open_store(pg_url.replace("postgresql://", "postgres://"), schema=schema) as store:
        assert store.head_position() == 1
        assert store.stats()["schema"] == schema


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schema": "Bad-Name"}, "schema name 'Bad-Name' is not allowed"),
        ({"schema": "x" * 49}, "is not allowed"),
        ({"pool_size": 0}, "pool_size must be an integer >= 1"),
        ({"sync": "none"}, "takes schema=, readonly=, pool_size=, clock="),
    ],
)
def test_bad_options_are_refused_clearly(pg_url: str, options: dict, message: str) -> None:
    with pytest.raises(eb.InvalidInput, match=message):
        eb.open_store(pg_url, **options)


def test_seed_004_columns_hold_the_aggregate_type_and_id(pg_url: str, schema: str) -> None:
    with eb.open_store(pg_url, schema=schema) as store:
        store.append(
            [
                eb.NewEvent("order-42", "OrderCreated", {"total": 5}),
                eb.NewEvent("order-line-7", "LineAdded"),
                eb.NewEvent("plain", "Noted"),
            ]
        )
        ids = [e.id for e in store.read_all()]
    got = rows(
        pg_url,
        f"SELECT entity_type, entity_id, event_id, event_type, event_data::text "
        f"FROM {schema}.events ORDER BY position",
    )
    assert got == [
        ("order", "42", ids[0], "OrderCreated", '{"total":5}'),
        ("order", "line-7", ids[1], "LineAdded", "{}"),
        ("plain", "plain", ids[2], "Noted", "{}"),
    ]


def test_a_read_only_store_refuses_appends_and_writes_nothing(pg_url: str, schema: str) -> None:
    eb.open_store(pg_url, schema=schema).close()
    with eb.open_store(pg_url, schema=schema, readonly=True) as store:
        with pytest.raises(eb.StoreReadOnly, match="readonly=True"):
            store.append([eb.NewEvent("a-1", "Opened")])
        assert store.head_position() == 0


def test_a_server_that_is_not_there_gives_a_clear_error() -> None:
    port = free_port()
    with pytest.raises(eb.StoreUnavailable) as caught:
        eb.open_store(f"postgresql://eventbook@127.0.0.1:{port}/eventbook")
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in caught.value.message
    assert caught.value.exit_code == 3


def eventbook_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventbook.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_the_cli_names_the_server_it_cannot_reach() -> None:
    port = free_port()
    done = eventbook_cli("--store", f"postgresql://eventbook@127.0.0.1:{port}/eventbook", "log")
    assert done.returncode == 3
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_the_demo_runs_on_postgresql_and_again_writes_nothing(pg_url: str, schema: str) -> None:
    url = f"{pg_url}?schema={schema}"
    first = eventbook_cli("--store", url, "demo")
    assert first.returncode == 0, first.stderr
    assert "rejected: insufficient_funds" in first.stdout
    assert "time machine" in first.stdout
    with eb.open_store(url) as store:
        head = store.head_position()
        assert head == 8
    again = eventbook_cli("--store", url, "demo")
    assert again.returncode == 0, again.stderr
    with eb.open_store(url) as store:
        assert store.head_position() == head
    state = eventbook_cli("--store", url, "state", "account-ada", "--json")
    assert state.returncode == 0, state.stderr  # the app was remembered in the schema
    assert '"balance": 45' in state.stdout or '"balance":45' in state.stdout


def test_a_commit_wakes_the_followers_of_other_store_objects_by_notify(
    pg_url: str, schema: str
) -> None:
    import time

    with (
        eb.open_store(pg_url, schema=schema) as follower,
        eb.open_store(pg_url, schema=schema) as writer,
    ):
        assert not follower.wait_for_append(0, 0.01)  # starts the follower's listener
        listener = follower._listener  # type: ignore[attr-defined]
        deadline = time.monotonic() + 5
        while listener.generation < 1 and time.monotonic() < deadline:  # LISTEN is in place
            time.sleep(0.01)
        seen = listener.generation
        writer.append([eb.NewEvent("a-1", "Opened")])
        while listener.generation == seen and time.monotonic() < deadline:
            time.sleep(0.005)
        assert listener.generation > seen, "the NOTIFY reached the other store's listener"
        assert writer._notifier.sent >= 1  # type: ignore[attr-defined]
        assert follower.wait_for_append(0, 1.0)
