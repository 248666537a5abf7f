"""`StoreContract`: the whole store contract as one test class, assembled from one mixin per
concern, with the fixtures they share (`store_factory`, `store`) and the teardown that closes
every store a test opened."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import eventbook as eb
from eventbook.testing.conformance.appending import AppendTests
from eventbook.testing.conformance.bad_input import BadInputTests
from eventbook.testing.conformance.commit_ids import CommitIdTests
from eventbook.testing.conformance.concurrency import ConcurrencyTests
from eventbook.testing.conformance.expected import ExpectedVersionTests
from eventbook.testing.conformance.factories import StoreFactory
from eventbook.testing.conformance.model import ModelTests
from eventbook.testing.conformance.reading import ReadTests
from eventbook.testing.conformance.subscriptions import SubscriptionTests


# pytest collects a class's tests base by base in reverse MRO order, so the mixins are listed
# last first: the tests run append, expected versions, commit ids, reads, subscriptions, bad
# input, concurrency, then the model.
class StoreContract(
    ModelTests,
    ConcurrencyTests,
    BadInputTests,
    SubscriptionTests,
    ReadTests,
    CommitIdTests,
    ExpectedVersionTests,
    AppendTests,
):
    """The store contract. Subclass it in a backend's test module and supply `store_factory`."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        raise NotImplementedError("a backend's test class must supply the store_factory fixture")

    @pytest.fixture(autouse=True)
    def _closes_stores(self, store_factory: StoreFactory) -> Iterator[None]:
        yield
        store_factory.close_all()

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> eb.EventStore:
        return store_factory.new()
