"""What an application declares: commands, deciders, and the application that holds them.

A decider is three pure functions over one kind of stream (a category: `account-a1` is in the
`account` category):

- `initial_state`: the state of a stream with no events;
- `decide(command, state, ctx) -> events | Rejected`: checks a command against the state of
  the first stream it names and returns the events it causes (past tense) or a rejection;
- `evolve(state, event) -> state`: folds one event into the state.

`decide` and `evolve` read no clock, random source, environment or I/O: `ctx.now` and
`ctx.random` are the only time and randomness they see, and both are recorded with the command,
so a replay and a re-decision reach the same result (seed 001).
"""

from __future__ import annotations

import random
import random as _random_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from eventbook.core.messages import Event, type_name_of
from eventbook.core.validation import check_aware
from eventbook.engine.provenance import AuditPolicy
from eventbook.errors import InvalidInput


class Command(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base class for commands: what someone asks the application to do (imperative).

    Subclass with a stable type name as the tag, and name the streams the command reads and
    writes (the first one is the stream whose decider decides it)::

        class Deposit(eb.Command, tag="Deposit"):
            account_id: str
            amount: int

            def streams(self) -> tuple[str, ...]:
                return (f"account-{self.account_id}",)
    """

    schema_version: ClassVar[int] = 1

    def streams(self) -> tuple[str, ...]:
        raise NotImplementedError(f"{type(self).__name__} must define streams()")


class Rejected(msgspec.Struct, frozen=True):
    """A command refused by its decider: a stable code (`insufficient_funds`) and a detail."""

    code: str
    detail: str = ""


class CommandRejected(Event, tag="CommandRejected"):
    """The NOP event that records a rejected command (seed 001), in `$rejected-{stream}`."""

    command: str
    command_id: str
    code: str
    detail: str
    data: dict[str, Any]


REJECTED_PREFIX = "$rejected-"


class Context:
    """All a decider may know beyond the command and the state.

    `now`: the engine's clock when the command was handled (recorded with the command).
    `random`: a `random.Random` seeded with `seed` (recorded), made when first used.
    `states`: the state of every stream the command names.
    """

    __slots__ = ("_random", "command_id", "now", "seed", "states")

    def __init__(
        self,
        now: datetime,
        random: random.Random | None,
        seed: int,
        command_id: str,
        states: Mapping[str, Any],
    ) -> None:
        self.now = now
        self._random = random
        self.seed = seed
        self.command_id = command_id
        self.states = states

    @property
    def random(self) -> random.Random:
        if self._random is None:
            self._random = _random_module.Random(self.seed)
        return self._random

    def state(self, stream: str) -> Any:
        try:
            return self.states[stream]
        except KeyError:
            raise KeyError(
                f"{stream!r} is not one of the streams this command names: {list(self.states)}"
            ) from None


Decision = Sequence[Event | tuple[str, Event]] | Event | Rejected


def placed(decision: object, first: str) -> list[tuple[str, Event]]:
    """The (stream, event) pairs of an accepting decision: plain events go to `first`."""
    if isinstance(decision, Event):
        return [(first, decision)]
    pairs = []
    for item in decision:  # type: ignore[attr-defined]
        if isinstance(item, Event):
            pairs.append((first, item))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Event):
            pairs.append((item[0], item[1]))
        else:
            raise TypeError(
                f"decide must return events, (stream, event) pairs or Rejected; got {item!r}"
            )
    if not pairs:
        raise TypeError("decide returned no events; return Rejected(code) to refuse a command")
    return pairs


@dataclass(frozen=True)
class Decider:
    """The decider of one stream category (streams named `{category}-{id}`)."""

    category: str
    initial_state: Any
    decide: Callable[[Any, Any, Context], Decision]
    evolve: Callable[[Any, Any], Any]
    version: str = "1"  # the version of `evolve`; snapshots by another version are ignored
    describe: Callable[[Any], str] | None = None  # a state in a few words, for passbooks
    # correct(before, after) -> events that take the recorded state `before` to the corrected
    # state `after` (what-if --book: the difference booked by appending, never by editing)
    correct: Callable[[Any, Any], Decision] | None = None

    @property
    def state_type(self) -> type:
        return type(self.initial_state)


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Application:
    """An event-sourced application: its deciders, commands and events, and how it runs.

    `snapshot_every`: a stream's state is saved every this many events (0: never).
    `record_rejections`: rejected commands are recorded as NOP events (seed 001).
    `business_tz`: the time zone whose midnight ends a business day (day-end cut-offs).
    `projections`: the read models kept from the log (`eventbook.Projection`).
    `sagas`: the process managers that react to its events (`eventbook.sagas.Saga`).
    `audit`: the audit fields (actor, reason, ...) every command must carry
    (`eventbook.AuditPolicy`; none by default).
    `occurred_at_check`: called as `check(occurred_at, now=...)` before a command that gives
    an occurred time is decided (the engine's and the CLI's); it raises `InvalidInput` to
    refuse it, nothing written (`eventbook.Calendar.check_occurred_at`: skew and horizon).
    """

    name: str
    deciders: Sequence[Decider]
    commands: Sequence[type[Command]]
    events: Sequence[type[Event]]
    snapshot_every: int = 100
    record_rejections: bool = True
    business_tz: str = "UTC"
    retries: int = 5
    upcasters: dict[tuple[str, int], Upcaster] = field(default_factory=dict)
    projections: Sequence[Any] = ()  # eventbook.Projection: the read models kept from the log
    sagas: Sequence[Any] = ()  # eventbook.sagas.Saga: the process managers run on the log
    occurred_at_check: Callable[..., object] | None = None  # (occurred_at, *, now): refuse
    audit: AuditPolicy = field(default_factory=AuditPolicy)  # the audit fields it requires

    def __post_init__(self) -> None:
        self.by_category = {d.category: d for d in self.deciders}
        self.command_types = {type_name_of(c): c for c in self.commands}  # type: ignore[arg-type]
        self.event_types = {type_name_of(e): e for e in self.events}
        self.event_types.setdefault("CommandRejected", CommandRejected)
        if not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise InvalidInput(
                f"snapshot_every must be an integer >= 0, got {self.snapshot_every!r}"
            )

    def upcaster(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function that lifts `type_name` data from `from_version` to the next::

        @app.upcaster("Deposited", 1)
        def _(data): return {**data, "currency": "EUR"}
        """

        def register(fn: Upcaster) -> Upcaster:
            self.upcasters[(type_name, from_version)] = fn
            return fn

        return register

    def check_occurred_at(self, occurred_at: datetime, *, now: datetime) -> datetime:
        """Refuse an occurred time without a time zone, or one `occurred_at_check` refuses
        (`InvalidInput`); return it."""
        check_aware(occurred_at, what="occurred_at")
        if self.occurred_at_check is not None:
            self.occurred_at_check(occurred_at, now=now)
        return occurred_at

    def decider_for(self, stream: str) -> Decider | None:
        category = stream.split("-", 1)[0]
        return self.by_category.get(category)

    def command_class(self, name: str) -> type[Command]:
        found = self.command_types.get(name)
        if found is None:
            raise InvalidInput(
                f"unknown command type {name!r} for the {self.name} application; "
                f"known commands: {', '.join(sorted(self.command_types)) or 'none'}"
            )
        return found
