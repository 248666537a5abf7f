"""eventbook: an event store and CQRS toolkit for Python.

import eventbook as eb
store = eb.open_store("./data")
r = store.append([eb.NewEvent("account-1", "Deposited", {"amount": 5})],
                 expected={"account-1": eb.NO_STREAM}, commit_id="c-1")
"""

from eventbook.core.messages import AppendResult, Event, NewEvent, RecordedEvent
from eventbook.engine import (
    Application,
    AppState,
    Command,
    Context,
    Decider,
    Decision,
    Engine,
    Folded,
    HistoryEntry,
    Outcome,
    Rejected,
    Replica,
    Target,
    state_hash,
)
from eventbook.errors import (
    DuplicateCommit,
    EventbookError,
    InvalidInput,
    StoreClosed,
    StoreCorrupted,
    StoreFailed,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
    StoreUnsupported,
    StreamNotFound,
    Timeout,
    WrongExpectedVersion,
)
from eventbook.projections import Projection, ProjectionRunner, projection
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
    "AppState",
    "AppendResult",
    "Application",
    "Command",
    "Context",
    "Decider",
    "Decision",
    "DuplicateCommit",
    "Engine",
    "Event",
    "EventStore",
    "EventbookError",
    "Expected",
    "Folded",
    "HistoryEntry",
    "InvalidInput",
    "NewEvent",
    "Outcome",
    "Projection",
    "ProjectionRunner",
    "RecordedEvent",
    "Rejected",
    "Replica",
    "StoreClosed",
    "StoreCorrupted",
    "StoreFailed",
    "StoreLocked",
    "StoreReadOnly",
    "StoreUnavailable",
    "StoreUnsupported",
    "StreamInfo",
    "StreamNotFound",
    "Subscription",
    "Target",
    "Timeout",
    "WrongExpectedVersion",
    "open_store",
    "projection",
    "state_hash",
]
