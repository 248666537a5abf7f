"""Fixtures for the read-model tests: one real redis-server for the session, emptied per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from eventbook.testing.servers import redis_server


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, for the whole session."""
    with redis_server() as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """The session's server, with nothing in it (FLUSHALL before each test)."""
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    client.flushall()
    try:
        yield redis_server_url
    finally:
        client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client on the test's server, to look behind the read model."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()
