"""Fixtures of the audit tests: a store of each backend with a test clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_support import Clock, open_kind

import eventbook as eb


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "log"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[eb.EventStore]:
    """A memory store or an embedded log (the audit layer sees only the store port)."""
    opened = open_kind(request.param, tmp_path / "s", clock)
    yield opened
    opened.close()


@pytest.fixture(params=["memory", "log", "postgres", "nats"])
def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> Iterator[eb.EventStore]:
    """A store of every backend (PostgreSQL: a fresh schema; NATS: a fresh stream)."""
    where: Path | str = tmp_path / "s"
    drop = None
    name = f"audit_{uuid.uuid4().hex[:12]}"
    if request.param == "postgres":
        where, drop = request.getfixturevalue("pg_url"), request.getfixturevalue("drop_schema")
    elif request.param == "nats":
        where = request.getfixturevalue("nats_url")
        drop = request.getfixturevalue("drop_nats_stream")
    opened = open_kind(request.param, where, clock, name)
    try:
        yield opened
    finally:
        opened.close()
        if drop is not None:
            drop(name)
