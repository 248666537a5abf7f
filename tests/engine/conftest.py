"""Fixtures for the engine tests: every test runs on every backend with a test clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import Clock, Env


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "log", "postgres", "nats"])
def env(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Env]:
    """A store of each backend, its clock, and engines over it (PostgreSQL: a fresh schema
    on the session's test server; NATS: a fresh JetStream stream on the session's server)."""
    where: Path | str = tmp_path / "s"
    drop = None
    if request.param == "postgres":
        where = request.getfixturevalue("pg_url")
        drop = request.getfixturevalue("drop_schema")
    elif request.param == "nats":
        where = request.getfixturevalue("nats_url")
        drop = request.getfixturevalue("drop_nats_stream")
    opened = Env(request.param, where, clock)
    try:
        yield opened
    finally:
        opened.close()
        if drop is not None:
            drop(opened.schema)


@pytest.fixture
def log_env(tmp_path: Path, clock: Clock) -> Iterator[Env]:
    """The embedded log only: for what must survive closing and reopening the store."""
    opened = Env("log", tmp_path / "s", clock)
    try:
        yield opened
    finally:
        opened.close()
