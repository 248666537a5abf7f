"""The store contract, run against the embedded log, including durability across reopen."""

from pathlib import Path

import pytest

import eventbook as eb
from eventbook.testing import DurableStoreContract, PathStoreFactory


class TestLogStore(DurableStoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> PathStoreFactory:
        # Each new() opens a fresh directory under tmp_path; reopen() closes and opens it again.
        return PathStoreFactory(tmp_path, lambda path: eb.open_store(path))
