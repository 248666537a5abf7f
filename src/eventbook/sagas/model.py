"""What a saga (a process manager) declares, and what it is given and gives back.

A saga has the decider's shape, turned around: it reacts to **events** by issuing **commands**.
`react(state, input, ctx) -> Reaction | None` is pure (no clock, no I/O: `ctx.now` is the
engine's clock as the runner read it for the round, recorded with the reaction): it returns the
saga's next state, the commands to issue (and the compensating ones), timers to set or cancel,
and the saga's status. None means the input changes nothing.

Its inputs are, in log order:
- the events it `starts` or follows (its `correlate` function names the saga instance),
- the events of the commands it issued (found by their command id, no correlation needed),
- `CommandRejected` of a command it issued (the engine records rejections),
- `TimerFired` when a timer it set comes due (by the engine's clock),
- `DispatchFailed` when a command could not be executed after the retry policy's attempts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from eventbook.core.messages import Event, RecordedEvent
from eventbook.engine.model import Command
from eventbook.errors import InvalidInput

Status = Literal["running", "completed", "compensated"]
STATUSES = ("running", "completed", "compensated", "parked")
SAGA_PREFIX = "saga_"  # a saga instance's stream: saga_{name}-{id}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class TimerFired(Event, tag="SagaTimerFired"):
    """The input a saga gets when a timer it set comes due."""

    name: str
    at: datetime


class DispatchFailed(Event, tag="SagaDispatchFailed"):
    """The input a saga gets when one of its commands failed every attempt (not a rejection:
    an error, such as a service that cannot be reached)."""

    command: str
    command_id: str
    error: str


@dataclass(frozen=True)
class Timer:
    """A deadline: `TimerFired(name, at)` comes to the saga once the engine's clock is at `at`.
    Setting a timer of the same name again moves it."""

    name: str
    at: datetime


@dataclass(frozen=True)
class Remote:
    """A command for another service (`service`, its name on the link): the runner does not
    execute it; the service's command inbox does, from this store's log delivered by a broker
    (eventbook.sagas.remote). Its outcome comes back as a command of this service."""

    service: str
    command: Command

    def __post_init__(self) -> None:
        if not isinstance(self.service, str) or not _NAME.fullmatch(self.service.replace("-", "_")):
            raise InvalidInput(
                f"a remote service is named by 1-40 lower-case letters, digits, '_' or '-', "
                f"got {self.service!r}"
            )
        if not isinstance(self.command, Command):
            raise InvalidInput(f"Remote carries an eventbook Command, got {self.command!r}")


@dataclass(frozen=True)
class Reaction:
    """What a saga does about one input."""

    state: Any
    commands: Sequence[Command | Remote] = ()  # Remote: for another service
    compensations: Sequence[Command | Remote] = ()  # undo steps: one that fails parks the saga
    timers: Sequence[Timer] = ()
    cancel: Sequence[str] = ()  # names of timers to cancel
    status: Status = "running"


@dataclass(frozen=True)
class SagaContext:
    """All a saga may know beyond its state and the input."""

    saga_id: str
    now: datetime  # the engine's clock when the saga reacted (recorded with the reaction)
    recorded: RecordedEvent | None  # the input as recorded (None for timers and failures)
    issued_by_me: bool  # the input is the outcome of a command this saga issued


@dataclass(frozen=True)
class Saga:
    """A process manager. `correlate(event, recorded)` gives the id of the saga instance an
    event starts or concerns (None: not this saga's); the outcomes of the commands a saga
    issued come to it without it. `retry_attempts` bounds how often a command that fails (an
    error, not a rejection) is tried before the saga gets `DispatchFailed`."""

    name: str
    initial_state: Any
    correlate: Callable[[Any, RecordedEvent], str | None]
    react: Callable[[Any, Any, SagaContext], Reaction | None]
    retry_attempts: int = 3
    state_type: type | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise InvalidInput(
                f"saga name must be 1-40 lower-case letters, digits or '_', starting with a "
                f"letter; got {self.name!r}"
            )
        if not isinstance(self.retry_attempts, int) or not 1 <= self.retry_attempts <= 100:
            raise InvalidInput(f"retry_attempts must be 1..100, got {self.retry_attempts!r}")
        if self.state_type is None:
            object.__setattr__(self, "state_type", type(self.initial_state))

    @property
    def category(self) -> str:
        return f"{SAGA_PREFIX}{self.name}"

    def stream(self, saga_id: str) -> str:
        return f"{self.category}-{saga_id}"


def saga_of_stream(stream: str) -> tuple[str, str] | None:
    """(saga name, saga id) of a saga instance's stream, None for other streams."""
    if not stream.startswith(SAGA_PREFIX) or "-" not in stream:
        return None
    category, saga_id = stream.split("-", 1)
    return category[len(SAGA_PREFIX) :], saga_id


def command_id_for(stream: str, version: int, index: int) -> str:
    """The deterministic id of a saga's command: its stream, the version of the saga event
    that issued it, its place in that event. A command sent again is applied once."""
    return f"{stream}/{version}/{index}"


def saga_stream_of_command(command_id: str) -> str | None:
    """The saga stream that issued a command, from the command's id (None: not a saga's)."""
    if not command_id.startswith(SAGA_PREFIX):
        return None
    stream, _, _rest = command_id.partition("/")
    return stream if _rest else None


__all__ = [
    "STATUSES",
    "DispatchFailed",
    "Reaction",
    "Remote",
    "Saga",
    "SagaContext",
    "Timer",
    "TimerFired",
    "command_id_for",
    "saga_of_stream",
    "saga_stream_of_command",
]
