"""The store contract as tests: one suite, run unchanged against every backend.

A backend's test module subclasses `StoreContract` (or `DurableStoreContract` when its stores
can be closed and opened again) and supplies a `store_factory` fixture. The suite uses only
the public API (`import eventbook as eb`) and `eventbook.limits`; it never imports a backend.

The suite has one module per concern; `StoreContract` is assembled from the test mixin
classes (appending ... model), one per module:

    factories       StoreFactory, PathStoreFactory: how the suite gets (and reopens) stores
    helpers         small shared helpers: `new`, `state_of`, `positions`, `Consumer`, ...
    cases           tables of input refused (and of input at the limits, accepted), and
                    models of the JSON and stream id rules
    appending       append: positions, versions, times, data round trips, stream ids
    expected        expected versions
    commit_ids      commit ids: retries, reuse for other content
    reading         read_stream, read_all, bad read arguments, many pages
    subscriptions   subscriptions, and a closed store
    bad_input       input refused before anything is written
    concurrency     racing writers, parallel writers and readers
    model           a model-based (stateful hypothesis) test
    contract        StoreContract: the mixins above and the fixtures they share
    durable         DurableStoreContract: reopen tests (stores that keep their data)

Pin a known bug of the shared port with xfail(strict=True, raises=...) on its case, never a
skip: it fails loudly the day the bug is fixed, and the mark goes with the fix.
"""

from eventbook.testing.conformance.contract import StoreContract
from eventbook.testing.conformance.durable import DurableStoreContract
from eventbook.testing.conformance.factories import (
    NamedStoreFactory,
    PathStoreFactory,
    StoreFactory,
)

__all__ = [
    "DurableStoreContract",
    "NamedStoreFactory",
    "PathStoreFactory",
    "StoreContract",
    "StoreFactory",
]
