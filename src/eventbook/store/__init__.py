"""The store port: the contract every backend meets, and the registry that opens them."""

from eventbook.store.contract import EventStore, StreamInfo
from eventbook.store.expected import ANY, EXISTS, NO_STREAM, Expected, ExpectedState
from eventbook.store.registry import open_store
from eventbook.store.subscription import Subscription

__all__ = [
    "ANY",
    "EXISTS",
    "NO_STREAM",
    "EventStore",
    "Expected",
    "ExpectedState",
    "StreamInfo",
    "Subscription",
    "open_store",
]
