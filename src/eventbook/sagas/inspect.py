"""Sagas as an operator sees them, from the store alone (no application needed): every saga
instance with its status, pending timers and parked commands; one instance's history; and the
retry of a parked one (`SagaRetried`, which the running runner picks up)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eventbook.core.messages import NewEvent, RecordedEvent
from eventbook.errors import InvalidInput, StreamNotFound
from eventbook.sagas.model import SAGA_PREFIX, saga_of_stream
from eventbook.sagas.records import Instance, SagaRetried
from eventbook.store.contract import EventStore


@dataclass(frozen=True)
class SagaSummary:
    id: str  # "{saga name}-{saga id}", e.g. "order-o1"
    saga: str
    status: str  # running, completed, compensated or parked
    version: int
    timers: dict[str, str]  # name -> ISO time
    parked: dict[str, str]  # command id -> reason
    state: Any
    stream: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "saga": self.saga,
            "status": self.status,
            "version": self.version,
            "timers": self.timers,
            "parked": self.parked,
            "state": self.state,
        }


def saga_stream(saga_id: str) -> str:
    """The stream of a saga instance named `order-o1` (or already `saga_order-o1`)."""
    stream = saga_id if saga_id.startswith(SAGA_PREFIX) else SAGA_PREFIX + saga_id
    if saga_of_stream(stream) is None:
        raise InvalidInput(
            f"{saga_id!r} names no saga instance; use SAGA-ID as `eventbook sagas list` shows "
            "it (e.g. order-o1)"
        )
    return stream


def fold(store: EventStore, stream: str) -> tuple[Instance, list[RecordedEvent]]:
    named = saga_of_stream(stream)
    assert named is not None
    instance = Instance(stream, named[1], None)
    history = []
    for rec in store.read_stream(stream):
        instance.apply(rec, None)
        history.append(rec)
    return instance, history


def summary(store: EventStore, stream: str) -> SagaSummary:
    instance, _history = fold(store, stream)
    return _summary(instance)


def _summary(instance: Instance) -> SagaSummary:
    name, saga_id = saga_of_stream(instance.stream) or ("", "")
    return SagaSummary(
        id=f"{name}-{saga_id}",
        saga=name,
        status=instance.shown_status,
        version=instance.version,
        timers={k: v.isoformat() for k, v in sorted(instance.timers.items())},
        parked=dict(instance.parked),
        state=instance.state,
        stream=instance.stream,
    )


def list_sagas(store: EventStore, saga: str | None = None) -> Iterator[SagaSummary]:
    """Every saga instance in the store (of one saga when named), by stream id."""
    prefix = SAGA_PREFIX + (f"{saga}-" if saga else "")
    for info in store.streams():
        if info.stream.startswith(prefix) and saga_of_stream(info.stream):
            yield summary(store, info.stream)


def show_saga(store: EventStore, saga_id: str) -> tuple[SagaSummary, list[RecordedEvent]]:
    stream = saga_stream(saga_id)
    instance, history = fold(store, stream)
    if not history:
        raise StreamNotFound(stream)
    return _summary(instance), history


def retry_saga(store: EventStore, saga_id: str) -> list[str]:
    """Mark every parked command of a saga instance for another try; returns their ids."""
    stream = saga_stream(saga_id)
    instance, history = fold(store, stream)
    if not history:
        raise StreamNotFound(stream)
    if not instance.parked:
        raise InvalidInput(
            f"saga {saga_id} is {instance.shown_status}, not parked: there is nothing to retry"
        )
    events = [NewEvent.of(stream, SagaRetried(command_id=cid)) for cid in instance.parked]
    store.append(events, expected={stream: instance.version})
    return list(instance.parked)


__all__ = ["SagaSummary", "list_sagas", "retry_saga", "saga_stream", "show_saga", "summary"]
