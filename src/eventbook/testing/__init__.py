"""Test helpers shipped with eventbook: the store conformance suite and store factories.

A backend's test module is a few lines::

    import pytest
    import eventbook as eb
    from eventbook.testing import StoreContract, StoreFactory

    class TestMemoryStore(StoreContract):
        @pytest.fixture
        def store_factory(self):
            return StoreFactory(lambda: eb.open_store("memory://"))

Stores that keep their data somewhere they can be opened again use `PathStoreFactory` and
`DurableStoreContract`, which adds the reopen tests. This package needs the `test` extra
(pytest, hypothesis) and never imports a backend: it sees stores only through the public API.
"""

import pytest

# The suite's asserts live in this package, not in a test module, so ask pytest to rewrite
# them too (before the import below); otherwise a failure would say only "AssertionError".
# Naming the package covers every module in it (eventbook.testing.conformance.*).
pytest.register_assert_rewrite("eventbook.testing.conformance")

from eventbook.testing.conformance import (  # noqa: E402
    DurableStoreContract,
    NamedStoreFactory,
    PathStoreFactory,
    StoreContract,
    StoreFactory,
)

__all__ = [
    "DurableStoreContract",
    "NamedStoreFactory",
    "PathStoreFactory",
    "StoreContract",
    "StoreFactory",
]
