"""The command engine: load state, decide, append with the expected versions, retry on conflict.

For each command the engine
1. returns the recorded outcome if the command id was handled before (idempotent commands);
2. loads the state of every stream the command names (from its cache, or snapshot + tail);
3. calls the decider with a context holding the only clock (`now`) and randomness (a seeded
   `random`) it may use;
4. appends the events, or the rejection's NOP event when the application records rejections,
   in one commit whose commit id is derived from the command id, expecting every stream it read
   to be at the version it read; the command, `now` and the seed are in every event's metadata,
   beside the caller's audit fields (actor, reason, correlation and causation ids: see
   `provenance`), which the application's `AuditPolicy` may require;
5. on a conflict, reloads and decides again, at most `app.retries` times;
6. saves a snapshot of each written stream that crossed a multiple of `app.snapshot_every`.

The cache is safe with other writers: a stale state fails the expected-version check and is
reloaded.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from eventbook import limits
from eventbook.core.messages import Event, NewEvent, RecordedEvent
from eventbook.core.validation import check_aware, check_id_text
from eventbook.engine.codec import EventDecoder, command_data, parse_command
from eventbook.engine.cutoffs import day_end_position, save_day_end
from eventbook.engine.folding import (
    NOW,
    AppState,
    Folded,
    Target,
    decider_of,
    fold_app,
    fold_stream,
)
from eventbook.engine.history import HistoryEntry, history
from eventbook.engine.model import (
    REJECTED_PREFIX,
    Application,
    Command,
    CommandRejected,
    Context,
    Rejected,
    placed,
)
from eventbook.errors import DuplicateCommit, InvalidInput, WrongExpectedVersion
from eventbook.store.commit import new_event_id
from eventbook.store.contract import EventStore

log = logging.getLogger("eventbook.engine")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What handling a command came to."""

    command_id: str
    command_type: str
    accepted: bool
    events: list[RecordedEvent] = field(default_factory=list)
    rejection: Rejected | None = None
    duplicate: bool = False  # True when the command id was handled before (nothing written)

    @property
    def position(self) -> int:
        """The global position of the outcome's last event (0 when nothing was recorded)."""
        return self.events[-1].position if self.events else 0


def commit_id_of(command_id: str) -> str:
    return f"cmd:{command_id}"


class Engine:
    """Runs an application's commands against a store. Thread-safe for concurrent commands."""

    def __init__(
        self,
        app: Application,
        store: EventStore,
        *,
        clock: Callable[[], datetime] = utc_now,
        cache_size: int = limits.engine_cache_streams_max,
    ) -> None:
        self.app = app
        self.store = store
        self.clock = clock
        self.decoder = EventDecoder(app)
        self._cache: OrderedDict[str, Folded] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # -- commands ---------------------------------------------------------------------------

    def execute(
        self,
        command: Command,
        *,
        command_id: str | None = None,
        occurred_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Handle one command; see the module docstring for the steps."""
        if not isinstance(command, Command):
            raise InvalidInput(f"execute takes an eventbook.Command, got {type(command).__name__}")
        name = self.app.command_class(_type_name(command)).__struct_config__.tag
        assert isinstance(name, str)
        streams = _streams_of(command)
        for stream in streams:
            decider_of(self.app, stream)
        if occurred_at is not None:
            check_aware(occurred_at, what="occurred_at")
        extra = self.app.audit.checked(metadata, app=self.app.name)  # actor, reason, ...
        if command_id is None:
            command_id = str(uuid.uuid4())
        else:
            check_id_text(command_id, what="command id", chars_max=limits.command_id_chars_max)
            prior = self.store.read_commit(commit_id_of(command_id))
            if prior:
                return self._outcome_of(name, command_id, prior)
        if occurred_at is not None:  # the application's rule for occurred times (skew, horizon)
            self.app.check_occurred_at(occurred_at, now=self.clock())
        record = {"type": name, "id": command_id, "data": command_data(command)}
        conflict: WrongExpectedVersion | None = None
        for _attempt in range(self.app.retries + 1):
            folds = {s: self._load(s) for s in streams}
            now = self.clock()
            seed = int.from_bytes(os.urandom(8), "big") >> 1
            ctx = Context(now, None, seed, command_id, {s: f.state for s, f in folds.items()})
            decider = decider_of(self.app, streams[0])
            decision = decider.decide(command, folds[streams[0]].state, ctx)
            meta = {**extra, "command": record, "now": now.isoformat(), "seed": seed}
            expected = {s: f.version for s, f in folds.items()}
            try:
                if isinstance(decision, Rejected):
                    return self._reject(
                        name, command_id, command, streams[0], decision, meta, expected, occurred_at
                    )
                events = placed(decision, streams[0])
                new = [
                    NewEvent.of(
                        stream, event, metadata=meta, occurred_at=occurred_at, id=new_event_id()
                    )
                    for stream, event in events
                ]
                result = self.store.append(
                    new, expected=expected, commit_id=commit_id_of(command_id)
                )
            except WrongExpectedVersion as error:
                conflict = error
                with self._lock:
                    for s in streams:
                        self._cache.pop(s, None)
                continue
            except DuplicateCommit:  # the same command id, handled concurrently
                return self._outcome_of(
                    name, command_id, self.store.read_commit(commit_id_of(command_id))
                )
            recorded = self._after_append(folds, events, new, result)
            return Outcome(command_id, name, True, recorded)
        assert conflict is not None
        raise conflict  # other writers kept changing these streams through every retry

    def run(self, name: str, data: object, **kwargs: Any) -> Outcome:
        """Handle a command given by type name and JSON text or a dict (as the CLI does)."""
        return self.execute(parse_command(self.app, name, data), **kwargs)

    def _reject(
        self,
        name: str,
        command_id: str,
        command: Command,
        stream: str,
        rejection: Rejected,
        meta: dict[str, Any],
        expected: dict[str, int],
        occurred_at: datetime | None,
    ) -> Outcome:
        if not self.app.record_rejections:
            return Outcome(command_id, name, False, rejection=rejection)
        nop = CommandRejected(
            command=name,
            command_id=command_id,
            code=rejection.code,
            detail=rejection.detail,
            data=command_data(command),
        )
        new = NewEvent.of(
            REJECTED_PREFIX + stream, nop, metadata=meta, occurred_at=occurred_at, id=new_event_id()
        )
        result = self.store.append([new], expected=expected, commit_id=commit_id_of(command_id))
        if result.recorded_at is None:  # the store stamps the time as it writes: read it
            return Outcome(command_id, name, False, self._read_back(result, 1), rejection)
        recorded = _recorded(new, result, result.first_position, result.versions[new.stream])
        return Outcome(command_id, name, False, [recorded], rejection)

    def _read_back(self, result: Any, count: int) -> list[RecordedEvent]:
        """A commit's events as the store recorded them (for stores whose AppendResult has no
        recorded_at: the NATS server stamps each message as it stores it)."""
        return list(self.store.read_all(after=result.first_position - 1, limit=count))

    def _outcome_of(self, name: str, command_id: str, prior: list[RecordedEvent]) -> Outcome:
        first = prior[0]
        recorded = first.metadata.get("command")
        if isinstance(recorded, dict) and isinstance(recorded.get("type"), str):
            name = recorded["type"]  # the command handled under this id (a reuse may differ)
        if first.stream.startswith(REJECTED_PREFIX) and first.type == "CommandRejected":
            rejection = Rejected(first.data.get("code", ""), first.data.get("detail", ""))
            return Outcome(command_id, name, False, prior, rejection, duplicate=True)
        return Outcome(command_id, name, True, prior, duplicate=True)

    def _after_append(
        self,
        folds: dict[str, Folded],
        events: list[tuple[str, Event]],
        new: list[NewEvent],
        result: Any,
    ) -> list[RecordedEvent]:
        if result.recorded_at is None:  # the store stamps the time as it writes: read it
            recorded = self._read_back(result, len(new))
        else:
            versions = dict(result.versions)
            recorded = []
            for i in range(len(new) - 1, -1, -1):  # versions count down from each stream's last
                n = new[i]
                recorded.append(_recorded(n, result, result.first_position + i, versions[n.stream]))
                versions[n.stream] -= 1
            recorded.reverse()
        crossed = []
        every = self.app.snapshot_every
        for (stream, event), rec in zip(events, recorded, strict=True):
            fold = folds.get(stream)
            if fold is None:  # a stream the command did not name: not cached
                with self._lock:
                    self._cache.pop(stream, None)
                continue
            before = fold.version
            fold.apply(decider_of(self.app, stream), rec, event)
            if every and before // every != fold.version // every:
                crossed.append(fold)
        for stream, fold in folds.items():
            if stream in result.versions:
                self._remember(fold)
        for fold in crossed:
            decider = decider_of(self.app, fold.stream)
            try:
                self.store.snapshots().save(fold.to_snapshot(decider, self.clock()))
            except Exception as error:  # the command is recorded: a lost snapshot only costs
                log.warning("snapshot of %s not saved: %s", fold.stream, error)  # replay time
        return recorded

    # -- state ------------------------------------------------------------------------------

    def _load(self, stream: str) -> Folded:
        with self._lock:
            cached = self._cache.get(stream)
            if cached is not None:
                self._cache.move_to_end(stream)
        if cached is not None:
            return Folded(
                stream,
                cached.state,
                cached.version,
                cached.position,
                cached.recorded_at,
                cached.max_occurred_at,
            )
        folded = fold_stream(self.app, self.store, self.decoder, stream)
        self._remember(replace(folded))  # a copy: the caller's is changed by _after_append
        return folded

    def _remember(self, folded: Folded) -> None:
        with self._lock:
            self._cache[folded.stream] = folded
            self._cache.move_to_end(folded.stream)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def state(self, stream: str, target: Target = NOW, *, use_snapshots: bool = True) -> Folded:
        """A stream's state now or at a target (the time machine)."""
        return fold_stream(
            self.app, self.store, self.decoder, stream, target, use_snapshots=use_snapshots
        )

    def app_state(self, target: Target = NOW, *, use_snapshots: bool = True) -> AppState:
        """The whole application's state now or at a position or time."""
        return fold_app(self.app, self.store, self.decoder, target, use_snapshots=use_snapshots)

    def snapshot(self, stream: str, target: Target = NOW) -> Folded:
        """Save a snapshot of a stream's state now (or at a version or position)."""
        if target.occurred_by is not None:  # that state skips late events: no prefix of the log
            raise InvalidInput(
                "a snapshot is the state at a version; give at_version, at_position or as_of, "
                "not occurred_by"
            )
        folded = self.state(stream, target)
        decider = decider_of(self.app, stream)
        self.store.snapshots().save(folded.to_snapshot(decider, self.clock()))
        return folded

    def history(self, stream: str) -> Iterator[HistoryEntry]:
        """The passbook of a stream: every command that touched it, with the state after."""
        return history(self, stream)

    def day_end(self, day: date) -> AppState:
        """The whole state at the end of a business day (as recorded by midnight), saved as
        that day's cut-off snapshot. Month, quarter and year ends are the day-ends of their
        last days."""
        position = day_end_position(self.store, day, self.app.business_tz)
        folded = self.app_state(Target(at_position=position))
        save_day_end(self.app, self.store, folded, day, self.clock())
        return folded


def _type_name(command: Command) -> str:
    tag = type(command).__struct_config__.tag
    if not isinstance(tag, str):
        raise InvalidInput(f"{type(command).__name__} has no stable type name (a tag)")
    return tag


def _streams_of(command: Command) -> tuple[str, ...]:
    streams = tuple(command.streams())
    if not streams or len(set(streams)) != len(streams):
        raise InvalidInput(
            f"{type(command).__name__}.streams() must name one or more different streams, "
            f"got {list(streams)}"
        )
    return streams


def _recorded(n: NewEvent, result: Any, position: int, version: int) -> RecordedEvent:
    """The RecordedEvent the store made of `n` (rebuilt here instead of read back)."""
    return RecordedEvent(
        position,
        n.stream,
        version,
        n.type,
        n.data,
        n.metadata,
        result.recorded_at,
        n.occurred_at.astimezone(UTC) if n.occurred_at else result.recorded_at,
        n.id or "",
        n.schema_version,
        result.commit_id,
    )
