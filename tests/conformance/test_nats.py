"""The store contract, run against NATS JetStream (a throwaway server, one JetStream stream per
store), including durability across reopen."""

from collections.abc import Callable

import pytest

import eventbook as eb
from eventbook.testing import DurableStoreContract, NamedStoreFactory


class TestNatsStore(DurableStoreContract):
    @pytest.fixture
    def store_factory(
        self, nats_url: str, drop_nats_stream: Callable[[str], None]
    ) -> NamedStoreFactory:
        # Each new() opens a fresh stream; reopen() closes the store and opens its stream again.
        return NamedStoreFactory(
            lambda name: eb.open_store(nats_url, stream=name),
            prefix="conf_",
            discard=drop_nats_stream,
        )
