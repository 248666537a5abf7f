"""Fixtures of the projection tests: a store of each kind (memory, the embedded log, NATS) and
the SQLite read models over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import eventbook as eb
from eventbook.read_models import ReadModel, open_read_models


@pytest.fixture(params=["memory", "log", "nats"])
def store(
    request: pytest.FixtureRequest, open_test_store: Callable[[str], eb.EventStore]
) -> eb.EventStore:
    return open_test_store(request.param)


@pytest.fixture
def models(store: eb.EventStore) -> Iterator[dict[str, ReadModel]]:
    opened = open_read_models(store, {"sqlite"})
    try:
        yield opened
    finally:
        opened["sqlite"].close()
