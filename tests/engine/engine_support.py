"""Helpers of the engine tests: a controllable clock, a store of either backend, plain folds."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import eventbook as eb
from eventbook.examples import bank

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STEP = timedelta(milliseconds=1)


class Clock:
    """A test clock. Each reading moves it on by `step`, so the times it gives are distinct
    and increasing; `set` and `advance` jump it. The engine and the store share one."""

    def __init__(self, start: datetime = START, step: timedelta = STEP) -> None:
        self._now = start
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self._now
            self._now += self.step
            return now

    def peek(self) -> datetime:
        return self._now

    def set(self, t: datetime) -> None:
        with self._lock:
            self._now = t

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


class Env:
    """A store of one backend (`memory`, `log`, `postgres` or `nats`) with the test clock, and
    engines over it. `where` is the log's directory, or the PostgreSQL or NATS URL (a fresh
    schema or JetStream stream is used)."""

    def __init__(self, kind: str, where: Path | str, clock: Clock) -> None:
        self.kind = kind
        self.path = where
        self.clock = clock
        self.schema = f"engine_{uuid.uuid4().hex[:12]}"
        self.store = self.open()

    def open(self) -> eb.EventStore:
        if self.kind == "memory":
            return eb.open_store("memory://", clock=self.clock)
        if self.kind == "postgres":
            return eb.open_store(str(self.path), schema=self.schema, clock=self.clock)
        if self.kind == "nats":
            return eb.open_store(str(self.path), stream=self.schema, clock=self.clock)
        return eb.open_store(str(self.path), clock=self.clock)

    def reopen(self) -> eb.EventStore:
        assert self.kind != "memory", "a memory store does not outlive its store object"
        self.store.close()
        self.store = self.open()
        return self.store

    def close(self) -> None:
        if not self.store.closed:
            self.store.close()

    def engine(self, app: eb.Application = bank.app, **changes: Any) -> eb.Engine:
        """An engine over this store with the test clock; `changes` tweak the application."""
        if changes:
            app = dataclasses.replace(app, **changes)
        return eb.Engine(app, self.store, clock=self.clock)

    def log(self) -> list[eb.RecordedEvent]:
        return list(self.store.read_all())

    def stream(self, stream: str) -> list[eb.RecordedEvent]:
        return list(self.store.read_stream(stream))


def typed(app: eb.Application, rec: eb.RecordedEvent) -> eb.Event:
    return rec.as_(app.event_types[rec.type])


def fold(app: eb.Application, stream: str, records: Iterable[eb.RecordedEvent]) -> Any:
    """A stream's state from its events, by the decider's own functions and nothing else."""
    decider = app.decider_for(stream)
    assert decider is not None
    state = decider.initial_state
    for rec in records:
        assert rec.stream == stream
        state = decider.evolve(state, typed(app, rec))
    return state


def fold_all(app: eb.Application, records: Iterable[eb.RecordedEvent]) -> dict[str, Any]:
    """Every stream's state from a run of the global log (rejections change nothing)."""
    states: dict[str, Any] = {}
    for rec in records:
        decider = app.decider_for(rec.stream)
        if decider is None:
            continue
        state = states.get(rec.stream, decider.initial_state)
        states[rec.stream] = decider.evolve(state, typed(app, rec))
    return states


def open_account(engine: eb.Engine, account_id: str, deposit: int = 0) -> None:
    assert engine.execute(bank.OpenAccount(account_id=account_id)).accepted
    if deposit:
        assert engine.execute(bank.Deposit(account_id=account_id, amount=deposit)).accepted


def balance(engine: eb.Engine, account_id: str, **kwargs: Any) -> int:
    return engine.state(bank.account_stream(account_id), **kwargs).state.balance
