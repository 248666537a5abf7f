"""Check that an application's deciders are deterministic: same command, state and ctx, same result.

A decider may see time and randomness only through its context (`ctx.now`, `ctx.random`),
both recorded with the command, so that a replay and a re-decision agree (seed 001). This
helper catches a decider that reads the process clock, the `random` module or other hidden
inputs: for each command it decides twice with the same context but with the wall clock (and
the `random` module's seed) set differently each time, and folds every event it produces twice
the same way::

    from eventbook.testing.determinism import check_deterministic

    check_deterministic(app, store, [OpenAccount(account_id="a1"), Deposit(...)])

Nothing is written: the commands are checked in order, each against the states the previous
ones would have produced, held in memory on top of the states loaded from the store. A
difference raises AssertionError naming the command and the two outputs. Needs the `test`
extra (time-machine).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgspec
import time_machine

from eventbook.core.messages import Event, type_name_of
from eventbook.engine.engine import Engine
from eventbook.engine.model import Application, Command, Context, Rejected, placed
from eventbook.store.contract import EventStore

#: The instant every decision is made at (`ctx.now`) unless told otherwise.
DEFAULT_NOW = datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=UTC)

#: The two process wall clocks the decisions run under: years, hours and microseconds apart.
DEFAULT_WALL_CLOCKS = (
    datetime(2001, 3, 4, 5, 6, 7, 111111, tzinfo=UTC),
    datetime(2037, 11, 12, 22, 59, 58, 987654, tzinfo=UTC),
)


@dataclass(frozen=True)
class DeterminismReport:
    """What was checked: how many commands were decided, accepted, and events folded."""

    commands: int = 0
    accepted: int = 0
    rejected: int = 0
    events: int = 0


def check_deterministic(
    app: Application,
    store: EventStore | Engine,
    commands: Iterable[Command],
    *,
    now: datetime = DEFAULT_NOW,
    seed: int = 20240229,
    wall_clocks: tuple[datetime, datetime] = DEFAULT_WALL_CLOCKS,
) -> DeterminismReport:
    """Decide each command twice and fold each event it produces twice; raise AssertionError
    when the two runs differ.

    `store` is the store the states are loaded from (as the engine loads them: snapshot and
    tail), or an engine over it. Both runs get the same `ctx` (`now`, a fresh
    `random.Random(seed)`, the same command id) while the process wall clock is frozen at the
    first, then the second of `wall_clocks`, and the `random` module is seeded differently.
    The store is only read.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if len(wall_clocks) != 2 or wall_clocks[0] == wall_clocks[1]:
        raise ValueError("wall_clocks must be two different instants")
    engine = store if isinstance(store, Engine) else Engine(app, store)
    if engine.app is not app:
        raise ValueError(f"the engine runs the {engine.app.name} application, not {app.name}")
    clocks = f"{wall_clocks[0].isoformat()} and {wall_clocks[1].isoformat()}"
    states: dict[str, Any] = {}  # stream -> state, as the commands so far would leave it

    def state_of(stream: str) -> Any:
        if stream not in states:
            states[stream] = engine.state(stream).state
        return states[stream]

    commands_seen = accepted = rejected = events = 0
    for index, command in enumerate(commands):
        label = f"command #{index} {_describe(command)}"
        streams = tuple(command.streams())
        decider = app.decider_for(streams[0]) if streams else None
        if decider is None:
            raise ValueError(f"{label}: its first stream names no decider of {app.name}")
        view = {s: state_of(s) for s in streams}
        command_id = f"determinism-{index}"
        ctx_args = (now, seed, command_id, view)
        decide = partial(_decide_once, decider.decide, command, streams[0], ctx_args)
        first, second = _twice(decide, wall_clocks, partial(_decision_shape, streams[0]))
        if not first.same_as(second):
            raise AssertionError(
                f"{label} decided differently under two wall clocks ({clocks}) "
                "with the same ctx:\n"
                f"  first:  {first.shape!r}\n  second: {second.shape!r}"
            )
        if first.error is not None:
            raise first.error
        commands_seen += 1
        decision = first.value
        if isinstance(decision, Rejected):
            rejected += 1
            continue
        accepted += 1
        for stream, event in placed(decision, streams[0]):
            target = app.decider_for(stream)
            if target is None:
                continue  # a stream of no decider: no state to fold (as in a replay)
            before = state_of(stream)
            fold = partial(target.evolve, before, event)
            one, two = _twice(fold, wall_clocks, _builtins)
            if not one.same_as(two):
                raise AssertionError(
                    f"{label}: folding its {type_name_of(type(event))} event into {stream} "
                    f"gave different states under two wall clocks ({clocks}):\n"
                    f"  event:  {_builtins(event)!r}\n"
                    f"  first:  {one.shape!r}\n  second: {two.shape!r}"
                )
            if one.error is not None:
                raise one.error
            states[stream] = one.value
            events += 1
    return DeterminismReport(commands_seen, accepted, rejected, events)


def _decide_once(
    decide: Callable[..., Any],
    command: Command,
    first: str,
    ctx_args: tuple[datetime, int, str, dict[str, Any]],
) -> Any:
    now, seed, command_id, view = ctx_args
    ctx = Context(now, random.Random(seed), seed, command_id, dict(view))
    decision = decide(command, view[first], ctx)
    if isinstance(decision, Rejected | Event):
        return decision
    return list(decision)  # once: a generator would be used up by the comparison


@dataclass(frozen=True)
class _Run:
    value: Any
    error: BaseException | None
    shape: Any  # the value or the error as builtins (shown in the message)

    def same_as(self, other: _Run) -> bool:
        return _key(self.shape) == _key(other.shape)


_key_encoder = msgspec.msgpack.Encoder(order="sorted")


def _key(shape: Any) -> bytes | str:
    """What two shapes are compared by: their canonical encoding (dict order, tuples and lists
    and NaN compare as the bytes they are stored as)."""
    try:
        return _key_encoder.encode(shape)
    except (TypeError, msgspec.EncodeError):
        return repr(shape)


def _twice(
    fn: Callable[[], Any], wall_clocks: tuple[datetime, datetime], shape: Callable[[Any], Any]
) -> tuple[_Run, _Run]:
    saved = random.getstate()
    try:
        runs = []
        for i, wall in enumerate(wall_clocks):
            random.seed(1_000_003 * (i + 1))  # the `random` module differs between the runs
            with time_machine.travel(wall, tick=False):
                try:
                    value = fn()
                except Exception as exc:
                    runs.append(_Run(None, exc, ("raised", type(exc).__name__, str(exc))))
                else:
                    runs.append(_Run(value, None, shape(value)))
        return runs[0], runs[1]
    finally:
        random.setstate(saved)


def _decision_shape(first: str, decision: Any) -> Any:
    if isinstance(decision, Rejected):
        return ("rejected", decision.code, decision.detail)
    try:
        pairs = placed(decision, first)
    except TypeError as exc:
        return ("invalid", repr(decision), str(exc))
    return [(stream, _builtins(event)) for stream, event in pairs]


def _builtins(value: Any) -> Any:
    try:
        return msgspec.to_builtins(value)
    except (TypeError, msgspec.EncodeError):
        return repr(value)


def _describe(command: Command) -> str:
    tag = type(command).__struct_config__.tag
    name = tag if isinstance(tag, str) else type(command).__name__
    return f"{name} {_builtins(command)}"


__all__ = ["DEFAULT_NOW", "DEFAULT_WALL_CLOCKS", "DeterminismReport", "check_deterministic"]
