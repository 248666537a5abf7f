"""eventbook: an event store and CQRS toolkit for Python.

    import eventbook as eb
    store = eb.open_store("./data")
    r = store.append([eb.NewEvent("account-1", "Deposited", {"amount": 5})],
                     expected={"account-1": eb.NO_STREAM}, commit_id="c-1")
"""

from eventbook.core.messages import AppendResult, Event, NewEvent, RecordedEvent
from eventbook.errors import (
    DuplicateCommit,
    EventbookError,
    InvalidInput,
    StoreClosed,
    StoreCorrupted,
    StoreFailed,
    StoreLocked,
    StoreReadOnly,
    StoreUnsupported,
    StreamNotFound,
    Timeout,
    WrongExpectedVersion,
)
from eventbook.store import (
    ANY,
    EXISTS,
    NO_STREAM,
    EventStore,
    Expected,
    StreamInfo,
    Subscription,
    open_store,
)

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "EXISTS",
    "NO_STREAM",
    "AppendResult",
    "DuplicateCommit",
    "Event",
    "EventStore",
    "EventbookError",
    "Expected",
    "InvalidInput",
    "NewEvent",
    "RecordedEvent",
    "StoreClosed",
    "StoreCorrupted",
    "StoreFailed",
    "StoreLocked",
    "StoreReadOnly",
    "StoreUnsupported",
    "StreamInfo",
    "StreamNotFound",
    "Subscription",
    "Timeout",
    "WrongExpectedVersion",
    "open_store",
]
