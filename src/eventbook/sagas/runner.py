"""Runs one saga against an engine: offers it the global log, fires its timers, and executes the
commands it issues.

A round (`run_once`):
1. read the log after the checkpoint (a batch); route each event to a saga instance (the outcome
   of a command the saga issued, by the command's id; anything else through `correlate`), and
   let the saga react; fire the timers that are due by the engine's clock;
2. append every reaction (`SagaReacted` in each instance's stream, expected versions checked)
   and the new checkpoint (`SagaCheckpoint`) as **one commit**: state, issued commands and
   checkpoint are stored atomically, so a crash never leaves one without the others;
3. execute the commands of the committed reactions, each with its deterministic id
   (`saga_{name}-{id}/{version}/{index}`): the engine applies a command id once, so executing
   again after a crash is harmless. A command that raises is tried `retry_attempts` times;
   then the saga gets `DispatchFailed` (a compensation that fails parks the saga instead).
   How far commands were executed is recorded with the next checkpoint; after a restart the
   commands of reactions after that point are executed again (and applied once).

Timers fire by the engine's clock (a test clock in tests), once: a firing is a reaction appended
with the instance's expected version. A late reply after a timeout is an input like any other,
after the timer's in log order: the saga's state decides what it means.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import msgspec

from eventbook import limits
from eventbook.core.messages import NewEvent, RecordedEvent
from eventbook.engine.codec import command_data
from eventbook.engine.engine import Engine, Outcome
from eventbook.engine.model import Command, CommandRejected
from eventbook.errors import EventbookError, InvalidInput, WrongExpectedVersion
from eventbook.sagas.model import (
    DispatchFailed,
    Reaction,
    Remote,
    Saga,
    SagaContext,
    TimerFired,
    command_id_for,
    saga_stream_of_command,
)
from eventbook.sagas.records import (
    Instance,
    SagaCheckpoint,
    SagaParked,
    checkpoint_stream,
    reacted_event,
)

Execute = Callable[..., Outcome]
Step = Callable[[str], None]


class SagaRunner:
    """Runs `saga` for `engine`'s application and store. One runner per saga at a time (a
    second one's commits are refused by the expected versions and it reloads)."""

    def __init__(
        self,
        engine: Engine,
        saga: Saga,
        *,
        batch_events: int = limits.saga_batch_events_max,
        execute: Execute | None = None,
        on_step: Step | None = None,
    ) -> None:
        if not isinstance(saga, Saga):
            raise InvalidInput(f"SagaRunner runs an eventbook Saga, got {type(saga).__name__}")
        if not engine.app.record_rejections:
            raise InvalidInput(
                f"saga {saga.name!r} learns of rejected commands from the log: the "
                f"{engine.app.name} application must record rejections (record_rejections=True)"
            )
        self.engine = engine
        self.store = engine.store
        self.saga = saga
        self.batch_events = batch_events
        self._execute = execute or engine.execute
        self._step = on_step or (lambda _name: None)
        self._prefix = saga.category + "-"
        self._checkpoint_stream = checkpoint_stream(saga.name)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = False
        self.errors: list[str] = []

    # -- loading ------------------------------------------------------------------------------

    def _load(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.timed: set[str] = set()  # streams of instances with pending timers
        self.position = 0
        self.dispatched = 0
        self._checkpoint_version = self.store.stream_version(self._checkpoint_stream)
        if self._checkpoint_version:
            last = next(self.store.read_stream(self._checkpoint_stream, backward=True, limit=1))
            self.position, self.dispatched = last.data["position"], last.data["dispatched"]
        for info in self.store.streams():
            if info.stream.startswith(self._prefix):
                instance = self._instance(info.stream)
                if instance.timers:
                    self.timed.add(instance.stream)
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self._written = self.dispatched  # the last saga event whose commands are queued
        self._unsaved = 0  # events offered since the last checkpoint written
        for rec in self.store.read_all(after=self.dispatched):
            if rec.stream.startswith(self._prefix):
                self._queue(rec)
                self._written = rec.position
        self._loaded = True

    def _instance(self, stream: str) -> Instance:
        instance = self.instances.get(stream)
        if instance is None:
            saga_id = stream[len(self._prefix) :]
            instance = Instance(stream, saga_id, self.saga.initial_state)
            for rec in self.store.read_stream(stream):
                instance.apply(rec, self.saga.state_type)
            if len(self.instances) >= limits.saga_instances_cached_max:
                self.instances.clear()
            self.instances[stream] = instance
        return instance

    def _queue(self, rec: RecordedEvent) -> None:
        """The commands a recorded saga event asks to execute (again)."""
        if rec.type == "SagaReacted":
            for command in rec.data["commands"]:
                self.outbox.append((rec.stream, command))
        elif rec.type == "SagaRetried":
            instance = self._instance(rec.stream)
            command = instance.commands.get(rec.data["command_id"])
            if command is not None:
                self.outbox.append((rec.stream, command))

    # -- a round ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """One round; returns how many inputs and commands it handled (0: nothing to do)."""
        with self._lock:
            if not self._loaded:
                self._load()
            try:
                handled = self._react_round()
            except WrongExpectedVersion:  # another runner of this saga wrote meanwhile
                self._loaded = False
                return 0
            return handled + self._dispatch()

    def _react_round(self) -> int:
        events = list(self.store.read_all(after=self.position, limit=self.batch_events))
        now = self.engine.clock()  # the saga's `ctx.now` this round, recorded with each reaction
        pending: dict[str, list[NewEvent]] = {}
        base: dict[str, int] = {}
        reacted: list[tuple[Instance, NewEvent]] = []
        foreign = 0  # events that are not this runner's own
        for rec in events:
            if rec.stream.startswith(self._prefix) or rec.stream == self._checkpoint_stream:
                if rec.type == "SagaRetried":  # an operator's, not this runner's: fold it
                    self._instance(rec.stream).apply(rec, self.saga.state_type)
                    if rec.position > self.dispatched:
                        self._queue(rec)
                    foreign += 1
                continue
            foreign += 1
            routed = self._route(rec)
            if routed is not None:
                instance, typed, issued = routed
                base.setdefault(instance.stream, instance.version)
                ctx = SagaContext(instance.saga_id, now, rec, issued)
                found = self._react(instance, typed, ctx, _input_of(rec, now))
                if found is not None:
                    reacted.append(found)
        for stream in sorted(self.timed):
            instance = self._instance(stream)
            for name, at in sorted(instance.timers.items(), key=lambda item: item[1]):
                if at <= now:
                    base.setdefault(instance.stream, instance.version)
                    ctx = SagaContext(instance.saga_id, at, None, False)
                    fired = TimerFired(name=name, at=at)
                    ref = {"timer": name, "at": at.isoformat(), "now": now.isoformat()}
                    found = self._react(instance, fired, ctx, ref)
                    if found is not None:
                        reacted.append(found)
                    instance.timers.pop(name, None)  # fired: a reaction may set it again
        for instance, event in reacted:
            pending.setdefault(instance.stream, []).append(event)
        base = {stream: version for stream, version in base.items() if stream in pending}
        last = events[-1].position if events else self.position
        if not reacted:
            # Nothing to store: events no instance reacts to are offered again after a crash
            # (and again not reacted to), so the checkpoint is written only now and then.
            self._unsaved += foreign
            self.position = last
            if self._unsaved < self.batch_events:
                return foreign
        self._commit(pending, base, last)
        self._unsaved = 0
        return foreign + len(reacted)

    def _route(self, rec: RecordedEvent) -> tuple[Instance, Any, bool] | None:
        """The instance an event goes to, the typed event, and whether the saga issued it."""
        if rec.type == CommandRejected.__struct_config__.tag:
            command_id = rec.data.get("command_id", "")
        else:
            command = rec.metadata.get("command")
            command_id = command.get("id", "") if isinstance(command, dict) else ""
        issuer = saga_stream_of_command(command_id) if isinstance(command_id, str) else None
        if issuer is not None and not issuer.startswith(self._prefix):
            issuer = None  # another saga's command
        if issuer is None and rec.stream.startswith(("saga_", "sagacheckpoint-")):
            return None
        if rec.type not in self.engine.app.event_types:
            return None
        typed = self.engine.decoder.decode(rec)
        if issuer is not None:
            return self._instance(issuer), typed, True
        saga_id = self.saga.correlate(typed, rec)
        if saga_id is None:
            return None
        return self._instance(self.saga.stream(saga_id)), typed, False

    def _react(
        self,
        instance: Instance,
        input_event: Any,
        ctx: SagaContext,
        input_ref: dict[str, Any],
    ) -> tuple[Instance, NewEvent] | None:
        reaction = self.saga.react(instance.state, input_event, ctx)
        if reaction is None:
            return None
        if not isinstance(reaction, Reaction):
            raise InvalidInput(
                f"saga {self.saga.name!r}: react must return a Reaction or None, got "
                f"{type(reaction).__name__}"
            )
        version = instance.version + 1  # the version this reaction's event will have
        commands = [
            _command_record(command_id_for(instance.stream, version, i), c, compensation)
            for i, (c, compensation) in enumerate(_commands_of(reaction))
        ]
        timers = [{"name": t.name, "at": t.at.isoformat()} for t in reaction.timers]
        event = reacted_event(
            instance.stream,
            input_ref,
            reaction.state,
            commands,
            timers,
            list(reaction.cancel),
            reaction.status,
        )
        # fold it now: later inputs of this round see the new state
        instance.apply(_as_recorded(event, version), self.saga.state_type)
        if instance.timers:
            self.timed.add(instance.stream)
        else:
            self.timed.discard(instance.stream)
        return instance, event

    def _commit(self, pending: dict[str, list[NewEvent]], base: dict[str, int], last: int) -> None:
        self._step("reactions decided")
        checkpoint = NewEvent.of(
            self._checkpoint_stream, SagaCheckpoint(position=last, dispatched=self.dispatched)
        )
        events = [e for stream_events in pending.values() for e in stream_events] + [checkpoint]
        expected: dict[str, object] = dict(base)
        expected[self._checkpoint_stream] = self._checkpoint_version
        try:
            result = self.store.append(events, expected=expected)
        except BaseException:
            self._loaded = False  # the folds above were tentative: read them again
            raise
        self._checkpoint_version += 1
        self.position = last
        for stream_events in pending.values():
            for event in stream_events:
                for command in event.data["commands"]:
                    self.outbox.append((event.stream, command))
        self._written = result.last_position
        self._step("reactions committed")

    # -- executing commands -------------------------------------------------------------------

    def _dispatch(self) -> int:
        done = 0
        while self.outbox:
            stream, command = self.outbox[0]
            instance = self._instance(stream)
            if command["id"] in instance.parked or "to" in command:
                self.outbox.pop(0)  # parked; or another service's, which its inbox executes
                continue
            error = self._execute_with_retries(command)
            self.outbox.pop(0)
            done += 1
            self._step("command executed")
            if error is not None:
                self._failed(instance, command, error)
        self.dispatched = max(self.dispatched, self._written)
        return done

    def _execute_with_retries(self, command: dict[str, Any]) -> str | None:
        cls = self.engine.app.command_types.get(command["type"])
        if cls is None:
            return f"the application declares no command {command['type']!r}"
        typed = msgspec.convert(command["data"], cls)
        error = ""
        for _attempt in range(self.saga.retry_attempts):
            try:
                self._execute(typed, command_id=command["id"])
                return None
            except EventbookError as exc:
                error = str(exc)
            except Exception as exc:  # a handler's or transport's failure: the saga decides
                error = f"{type(exc).__name__}: {exc}"
        return error or "failed"

    def _failed(self, instance: Instance, command: dict[str, Any], error: str) -> None:
        """A command failed every attempt: the saga reacts, or (a compensation, or a saga that
        does not react) the instance is parked, visible, to be retried by an operator."""
        self.errors.append(f"{instance.stream}: {command['type']} {command['id']}: {error}")
        reacted = None
        if not command.get("compensation"):
            failed = DispatchFailed(command=command["type"], command_id=command["id"], error=error)
            now = self.engine.clock()
            ctx = SagaContext(instance.saga_id, now, None, True)
            before = instance.version
            ref = {"failed": command["id"], "now": now.isoformat()}
            reacted = self._react(instance, failed, ctx, ref)
            if reacted is not None:
                self._append_one(instance.stream, before, reacted[1])
                for record in reacted[1].data["commands"]:
                    self.outbox.append((instance.stream, record))
                return
        parked = NewEvent.of(
            instance.stream,
            SagaParked(command_id=command["id"], command=command["type"], reason=error),
        )
        self._append_one(instance.stream, instance.version, parked)
        instance.apply(_as_recorded(parked, instance.version + 1), self.saga.state_type)

    def _append_one(self, stream: str, version: int, event: NewEvent) -> None:
        try:
            result = self.store.append([event], expected={stream: version})
        except BaseException:
            self._loaded = False
            raise
        self._written = max(self._written, result.last_position)

    # -- running ------------------------------------------------------------------------------

    def run_until_idle(self, rounds_max: int = 10_000) -> int:
        """Rounds until one finds nothing to do; returns the work done."""
        total = 0
        for _ in range(rounds_max):
            done = self.run_once()
            if not done:
                return total
            total += done
        return total

    def start(self, idle_wait: float = 0.05) -> None:
        """Run rounds on a thread of its own until `stop()`."""

        def loop() -> None:
            while not self._stop.is_set():
                if not self.run_once():
                    self.store.wait_for_append(self.position, idle_wait)

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name=f"saga-{self.saga.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None


def _commands_of(reaction: Reaction) -> Iterable[tuple[Command | Remote, bool]]:
    for command in reaction.commands:
        yield command, False
    for command in reaction.compensations:
        yield command, True


def _command_record(
    command_id: str, command: Command | Remote, compensation: bool
) -> dict[str, Any]:
    if isinstance(command, Remote):
        record = _command_record(command_id, command.command, compensation)
        record["to"] = command.service
        return record
    if not isinstance(command, Command):
        raise InvalidInput(f"a saga issues eventbook Commands, got {type(command).__name__}")
    tag = type(command).__struct_config__.tag
    return {
        "id": command_id,
        "type": tag,
        "data": command_data(command),
        "compensation": compensation,
    }


def _input_of(rec: RecordedEvent, now: datetime) -> dict[str, Any]:
    return {
        "position": rec.position,
        "stream": rec.stream,
        "type": rec.type,
        "id": rec.id,
        "now": now.isoformat(),
    }


def _as_recorded(event: NewEvent, version: int) -> RecordedEvent:
    """A saga event as the fold sees it before it is read back (only version and data count)."""
    stamp = datetime.min
    return RecordedEvent(
        0,
        event.stream,
        version,
        event.type,
        event.data,
        event.metadata,
        stamp,
        stamp,
        event.id or "",
        event.schema_version,
        None,
    )


__all__ = ["SagaRunner"]
