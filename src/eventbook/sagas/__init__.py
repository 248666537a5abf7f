"""Sagas (process managers): transactions across aggregates and services without two-phase
commit. A saga reacts to events by issuing commands with deterministic ids; its own state is
event-sourced; its timers fire by the engine's clock; compensations undo what cannot complete.
See docs/sagas.md."""

from eventbook.sagas.model import (
    STATUSES,
    DispatchFailed,
    Reaction,
    Remote,
    Saga,
    SagaContext,
    Timer,
    TimerFired,
)
from eventbook.sagas.runner import SagaRunner

__all__ = [
    "STATUSES",
    "DispatchFailed",
    "Reaction",
    "Remote",
    "Saga",
    "SagaContext",
    "SagaRunner",
    "Timer",
    "TimerFired",
]
