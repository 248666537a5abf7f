"""Fixtures for the engine tests: every test runs on both backends with a test clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import Clock, Env


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "log"])
def env(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Env]:
    """A store of each backend, its clock, and engines over it."""
    opened = Env(request.param, tmp_path / "s", clock)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def log_env(tmp_path: Path, clock: Clock) -> Iterator[Env]:
    """The embedded log only: for what must survive closing and reopening the store."""
    opened = Env("log", tmp_path / "s", clock)
    try:
        yield opened
    finally:
        opened.close()
