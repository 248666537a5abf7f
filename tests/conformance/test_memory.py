"""The store contract, run against the in-memory store."""

import pytest

import eventbook as eb
from eventbook.testing import StoreContract, StoreFactory


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return StoreFactory(lambda: eb.open_store("memory://"))
