"""A saga's own events, and the fold of them into a saga instance.

A saga instance is event-sourced in its stream `saga_{name}-{id}`: each `SagaReacted` records
the input it reacted to, the state it reached, the commands it issued (with their ids), the
timers it set or cancelled and its status; `SagaParked` and `SagaRetried` record a command that
failed for good and the operator's retry. The runner's checkpoint is `SagaCheckpoint` in
`sagacheckpoint-{name}`, appended in the same commit as the reactions it covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from eventbook.core.messages import Event, NewEvent, RecordedEvent

CHECKPOINT_CATEGORY = "sagacheckpoint"


class SagaReacted(Event, tag="SagaReacted"):
    input: dict[str, Any]  # {"position", "stream", "type", "id"} | {"timer", "at"} | {"failed"}
    state: Any
    commands: list[dict[str, Any]]  # {"id", "type", "data", "compensation"}
    timers: list[dict[str, Any]]  # {"name", "at"}
    cancel: list[str]
    status: str


class SagaParked(Event, tag="SagaParked"):
    command_id: str
    command: str
    reason: str


class SagaRetried(Event, tag="SagaRetried"):
    command_id: str


class SagaCheckpoint(Event, tag="SagaCheckpoint"):
    position: int  # every event up to here was offered to the saga
    dispatched: int  # the commands of saga events up to here were executed


SAGA_EVENT_TYPES = ("SagaReacted", "SagaParked", "SagaRetried")


def checkpoint_stream(name: str) -> str:
    return f"{CHECKPOINT_CATEGORY}-{name}"


@dataclass
class Instance:
    """A saga instance as its stream tells it."""

    stream: str
    saga_id: str
    state: Any
    version: int = 0
    status: str = "running"
    timers: dict[str, datetime] = field(default_factory=dict)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> command record
    parked: dict[str, str] = field(default_factory=dict)  # command id -> reason

    @property
    def shown_status(self) -> str:
        return "parked" if self.parked else self.status

    def apply(self, rec: RecordedEvent, state_type: type | None) -> None:
        """Fold one of the instance's recorded events."""
        self.version = rec.version
        data = rec.data
        if rec.type == "SagaReacted":
            raw = data["state"]
            self.state = raw if state_type is None else msgspec.convert(raw, state_type)
            self.status = data["status"]
            for name in data["cancel"]:
                self.timers.pop(name, None)
            timer = data["input"].get("timer")
            if timer is not None:
                self.timers.pop(timer, None)
            for t in data["timers"]:
                self.timers[t["name"]] = datetime.fromisoformat(t["at"])
            for command in data["commands"]:
                self.commands[command["id"]] = command
        elif rec.type == "SagaParked":
            self.parked[data["command_id"]] = data["reason"]
        elif rec.type == "SagaRetried":
            self.parked.pop(data["command_id"], None)


def reacted_event(
    stream: str,
    input_: dict[str, Any],
    state: Any,
    commands: list[dict[str, Any]],
    timers: list[dict[str, Any]],
    cancel: list[str],
    status: str,
    occurred_at: datetime | None = None,
) -> NewEvent:
    event = SagaReacted(
        input=input_,
        state=msgspec.to_builtins(state),
        commands=commands,
        timers=timers,
        cancel=cancel,
        status=status,
    )
    return NewEvent.of(stream, event, occurred_at=occurred_at)


__all__ = [
    "CHECKPOINT_CATEGORY",
    "SAGA_EVENT_TYPES",
    "Instance",
    "SagaCheckpoint",
    "SagaParked",
    "SagaReacted",
    "SagaRetried",
    "checkpoint_stream",
    "reacted_event",
]
