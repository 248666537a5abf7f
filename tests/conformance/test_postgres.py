"""The store contract, run against PostgreSQL (a throwaway server, one schema per store),
including durability across reopen."""

from collections.abc import Callable

import pytest

import eventbook as eb
from eventbook.testing import DurableStoreContract, NamedStoreFactory


class TestPostgresStore(DurableStoreContract):
    @pytest.fixture
    def store_factory(self, pg_url: str, drop_schema: Callable[[str], None]) -> NamedStoreFactory:
        # Each new() opens a fresh schema; reopen() closes the store and opens its schema again.
        return NamedStoreFactory(
            lambda schema: eb.open_store(pg_url, schema=schema), prefix="conf_", discard=drop_schema
        )
