"""The projection runner: catch up from each checkpoint, then follow the log live.

For each projection the runner reads the global log after the active generation's checkpoint
in bounded batches and hands each batch to the read model, which applies the handler and moves
the checkpoint in one transaction. A failing batch is retried event by event; an event whose
handler keeps failing (`attempts` times) stops that projection at its position with the error,
while the others keep running. A projection whose version differs from its active generation's
is rebuilt into a new generation from position 0 while the old one keeps serving, and then
switched (blue/green).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice

import msgspec

from eventbook import limits
from eventbook.core.messages import RecordedEvent
from eventbook.engine.codec import EventDecoder, lift
from eventbook.engine.model import Application
from eventbook.errors import EventbookError, InvalidInput, StoreFailed
from eventbook.projections.model import (
    Generation,
    Projection,
    ProjectionStatus,
    ProjectionStopped,
    RecordedBatch,
)
from eventbook.read_models.base import AlreadyApplied, ReadModel
from eventbook.store.contract import EventStore

log = logging.getLogger("eventbook.projections")

Progress = Callable[[int, int], None]  # (position reached, head)


class ReadModelUnavailable(StoreFailed):
    """The read model itself failed (connection lost, busy): nothing is stopped, the batch is
    tried again on the next catch-up."""

    def __init__(self, name: str, error: BaseException) -> None:
        EventbookError.__init__(
            self,
            f"projection {name}: its read model is unavailable ({type(error).__name__}: "
            f"{error}); nothing was applied, it will be tried again",
        )


class ProjectionRunner:
    """Keeps an application's projections up to date from a store.

    `read_models`: target kind -> ReadModel (see `eventbook.read_models.open_read_models`).
    """

    def __init__(
        self,
        store: EventStore,
        app: Application,
        read_models: dict[str, ReadModel],
        *,
        batch_events: int = limits.projection_batch_events_max,
        attempts: int = 3,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.app = app
        self.projections: dict[str, Projection] = {p.name: p for p in app.projections}
        self.read_models = read_models
        self.batch_events = batch_events
        self.attempts = attempts
        self.clock = clock
        self.decoder = EventDecoder(app)
        # the schema version each declared type is read at (raw batches are lifted to it)
        self._versions = {name: cls.schema_version for name, cls in app.event_types.items()}
        versions = set(self._versions.values())
        self._uniform = versions.pop() if len(versions) == 1 else None  # usually 1
        for p in self.projections.values():
            if p.target not in read_models:
                raise InvalidInput(
                    f"projection {p.name} needs a {p.target!r} read model; this runner has "
                    f"{sorted(read_models)}"
                )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def projection(self, name: str) -> Projection:
        found = self.projections.get(name)
        if found is None:
            raise InvalidInput(
                f"no projection named {name!r} in the {self.app.name} application; its "
                f"projections: {', '.join(sorted(self.projections)) or 'none'}"
            )
        return found

    def model(self, projection: Projection) -> ReadModel:
        return self.read_models[projection.target]

    # -- catching up ------------------------------------------------------------------------

    def catch_up(self, names: Iterable[str] | None = None, progress: Progress | None = None) -> int:
        """Bring every (or the named) projection up to the head as it is now; returns how many
        events were applied in all. Stopped projections are left where they stopped."""
        head = self.store.head_position()
        applied = 0
        with self._lock:
            for name in names or sorted(self.projections):
                try:
                    applied += self._catch_up_one(self.projection(name), head, progress)
                except AlreadyApplied:
                    continue  # another runner switched this projection's generations first
        return applied

    def _catch_up_one(self, projection: Projection, head: int, progress: Progress | None) -> int:
        model = self.model(projection)
        generations = model.generations(projection.name)
        active = next((g for g in generations if g.active), None)
        if active is None:
            for g in generations:  # a generation that was never switched to: start afresh
                model.drop(projection.name, g.generation)
            active = model.create_generation(projection, active=True)
        applied = 0
        if active.status == "running":
            applied += self._advance(projection, active, head, progress)
        if active.version != projection.version:  # blue/green: build the new version beside
            building = next(
                (g for g in generations if not g.active and g.version == projection.version),
                None,
            ) or model.create_generation(projection, active=False)
            if building.status == "running":
                applied += self._advance(projection, building, head, progress)
                if self._generation(projection, building.generation).position >= head:
                    model.activate(projection.name, building.generation)
        return applied

    def _generation(self, projection: Projection, generation: int) -> Generation:
        for g in self.model(projection).generations(projection.name):
            if g.generation == generation:
                return g
        # Another runner dropped it (it switched generations first): like a batch it applied.
        raise AlreadyApplied(projection.name, generation, -1)

    def _advance(
        self, projection: Projection, gen: Generation, head: int, progress: Progress | None
    ) -> int:
        """Apply the log after the generation's checkpoint up to `head`, batch by batch."""
        if gen.status != "running":
            return 0
        drift = self.model(projection).drift(projection, gen.generation)
        if drift is not None:
            self.model(projection).mark_failed(
                projection.name,
                gen.generation,
                gen.position + 1,
                f"{drift}; rebuild it: eventbook projections rebuild {projection.name}",
            )
            return 0
        position = gen.position
        if position >= head:  # up to date, or another runner got past the head read before
            return 0
        applied = 0
        raw = projection.raw
        events = None if raw else self.store.read_all(after=position, limit=head - position)
        while position < head:  # bounded batches: one read of the log, or one read per batch
            if raw:  # read as the batch handler folds: no batch held in memory, nothing typed
                through = min(position + self.batch_events, head)
                batch: Sequence[RecordedEvent] = self._raw_batch(projection, position, through)
            else:
                batch = list(islice(events, self.batch_events))  # type: ignore[arg-type]
                if not batch:
                    break
                through = batch[-1].position
            try:
                done, position, stopped = self._apply(projection, gen, batch, position, through)
            except AlreadyApplied:
                return applied  # another runner is ahead: it owns this stretch
            applied += done
            if stopped:
                return applied
            if progress is not None:
                progress(position, head)
        return applied

    def _apply(
        self,
        projection: Projection,
        gen: Generation,
        batch: Sequence[RecordedEvent],
        after: int,
        through: int,
    ) -> tuple[int, int, bool]:
        """Apply a batch; returns (events handled, position reached, stopped)."""
        model = self.model(projection)
        try:  # decoding too: an event that does not decode fails like a failing handler
            wanted = self._wanted(projection, batch)
            model.apply(projection, gen.generation, wanted, after, through)
            if isinstance(wanted, RecordedBatch):
                if wanted.count is None:  # the handler stopped reading early: count them
                    wanted.count = sum(1 for _ in wanted.records())
                return wanted.count, through, False
            return len(wanted), through, False
        except AlreadyApplied:
            raise
        except Exception as error:  # find the failing event: one event per transaction now
            if model.is_transient(error):
                raise ReadModelUnavailable(projection.name, error) from error
            log.debug("projection %s: a batch failed; applying it event by event", projection.name)
        if isinstance(batch, RecordedBatch):  # every event of the stretch, read again
            read = self.store.read_all(after=after, limit=through - after)
            batch = [r for r in read if r.position <= through]
        position, count = after, 0
        for rec in batch:
            if not self._apply_one(model, projection, gen, rec, position):
                return count, position, True
            count += projection.wants(rec.type)
            position = rec.position
        return count, position, False

    def _apply_one(
        self,
        model: ReadModel,
        projection: Projection,
        gen: Generation,
        rec: RecordedEvent,
        after: int,
    ) -> bool:
        """Apply one event, trying `attempts` times; on the last failure stop the projection
        at this event with the error. Returns whether it was applied."""
        error: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(0.05 * 2**attempt, 1.0))
            try:
                one = self._wanted(projection, [rec])
                model.apply(projection, gen.generation, one, after, rec.position)
                return True
            except AlreadyApplied:
                raise
            except Exception as exc:
                if model.is_transient(exc):  # the target is down, not the event at fault
                    raise ReadModelUnavailable(projection.name, exc) from exc
                error = exc
        message = f"{type(error).__name__}: {error}"
        log.error(
            "projection %s stopped at position %d: %s", projection.name, rec.position, message
        )
        model.mark_failed(projection.name, gen.generation, rec.position, message)
        return False

    def _wanted(
        self, projection: Projection, batch: Sequence[RecordedEvent]
    ) -> Sequence[tuple[RecordedEvent, object]]:
        """The batch's events the projection handles, each with its typed event (the hot loop
        of a rebuild: names looked up once); for a `raw_batch` projection the recorded events
        alone (lifted to the current schema versions)."""
        if isinstance(batch, RecordedBatch):
            return batch
        if projection.raw:
            records = [self._lifted(r) for r in batch if projection.wants(r.type)]
            return RecordedBatch.of(records, self._typed)
        handles, declared, decode = projection.handles, self.app.event_types, self.decoder.decode
        return [
            (r, decode(r) if r.type in declared else None)
            for r in batch
            if not handles or r.type in handles
        ]

    def _raw_batch(self, projection: Projection, after: int, through: int) -> RecordedBatch:
        """The events after `after` through `through` that a `raw_batch` projection handles,
        read from the log as they are iterated (lifted to the current schema versions)."""
        batch = RecordedBatch(
            lambda: self._read_raw(batch, projection.handles, after, through), self._typed
        )
        return batch

    # A rebuild's hot loop (for raw batches): each event is folded right after it is decoded,
    # while it is still in the CPU's caches, and freed before the next is read; a batch read
    # into a list first (thousands of events) costs more than the fold itself.

    def _read_raw(
        self, batch: RecordedBatch, handles: frozenset[str], after: int, through: int
    ) -> Iterator[RecordedEvent]:
        uniform, lifted, count = self._uniform, self._lifted, 0
        for r in self.store.read_all(after=after, limit=through - after):
            if r.position > through:  # past a hole in the positions: the next batch's
                break
            if handles and r.type not in handles:
                continue
            if r.schema_version != uniform:
                r = lifted(r)
            count += 1
            yield r
        batch.count = count

    def _lifted(self, rec: RecordedEvent) -> RecordedEvent:
        want = self._versions.get(rec.type, rec.schema_version)
        if rec.schema_version == want:
            return rec
        data = lift(self.app, rec.type, rec.schema_version, rec.data, want)
        return msgspec.structs.replace(rec, data=data, schema_version=want)

    def _typed(self, rec: RecordedEvent) -> object:
        if rec.type not in self.app.event_types:
            return None
        return self.decoder.decode(rec)

    # -- following ----------------------------------------------------------------------------

    def start(self, poll_seconds: float = 0.05) -> None:
        """Follow the log in a background thread until `stop()`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._follow, args=(poll_seconds,), name="eventbook-projections", daemon=True
        )
        self._thread.start()

    def _follow(self, poll_seconds: float) -> None:
        seen = -1
        while not self._stop.is_set() and not self.store.closed:
            try:
                head = self.store.head_position()
                if head != seen:
                    self.catch_up()
                    seen = head
                self.store.wait_for_append(head, poll_seconds)
            except Exception:
                if self.store.closed:
                    return
                log.exception("projection runner: catching up failed; trying again")
                self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # -- asking ---------------------------------------------------------------------------

    def status(self) -> list[ProjectionStatus]:
        head = self.store.head_position()
        now = self.clock()
        found = []
        for name in sorted(self.projections):
            projection = self.projections[name]
            generations = self.model(projection).generations(name)
            active = next((g for g in generations if g.active), None)
            building = next((g for g in generations if not g.active), None)
            position = active.position if active else 0
            state = "new" if active is None else active.status
            if building is not None and state == "running":
                state = "rebuilding"
            found.append(
                ProjectionStatus(
                    name=name,
                    version=active.version if active else projection.version,
                    target=projection.target,
                    position=position,
                    lag=max(0, head - position),
                    lag_seconds=self._lag_seconds(position, head, now),
                    status=state,
                    error=active.error if active else "",
                    failed_position=active.failed_position if active else 0,
                    rebuilding=building,
                )
            )
        return found

    def _lag_seconds(self, position: int, head: int, now: datetime) -> float:
        if position >= head:
            return 0.0
        oldest = next(iter(self.store.read_all(after=position, limit=1)), None)
        if oldest is None:
            return 0.0
        return max(0.0, (now - oldest.recorded_at).total_seconds())

    def position(self, name: str) -> int:
        projection = self.projection(name)
        active = self.model(projection).active(name)
        return active.position if active else 0

    def wait_for(
        self, position: int, names: Iterable[str] | None = None, timeout: float = 5.0
    ) -> None:
        """Read-your-writes: block until the (named) projections have applied `position`.
        Raises `eb.Timeout` after `timeout` seconds, and ProjectionStopped when one is stopped
        before it gets there."""
        wanted = list(names or sorted(self.projections))
        by_model: dict[int, tuple[ReadModel, list[str]]] = {}
        for name in wanted:  # unknown names fail before any waiting
            model = self.model(self.projection(name))
            by_model.setdefault(id(model), (model, []))[1].append(name)
        deadline = time.monotonic() + timeout
        for model, names_here in by_model.values():
            left = timeout if len(by_model) == 1 else max(0.0, deadline - time.monotonic())
            model.wait_for(names_here, position, left)

    # -- operations -----------------------------------------------------------------------

    def rebuild(self, name: str, progress: Progress | None = None) -> Generation:
        """Rebuild a projection from position 0 into a new generation while the active one
        keeps serving, then switch to it. Returns the new active generation."""
        projection = self.projection(name)
        model = self.model(projection)
        with self._lock:
            try:
                return self._rebuild(projection, model, progress)
            except AlreadyApplied:
                raise InvalidInput(
                    f"another runner switched {name}'s generations during the rebuild; nothing "
                    "was lost, run the rebuild again"
                ) from None

    def _rebuild(
        self, projection: Projection, model: ReadModel, progress: Progress | None
    ) -> Generation:
        name = projection.name
        for g in model.generations(name):
            if not g.active:
                model.drop(name, g.generation)  # a half-built earlier rebuild
        fresh = model.create_generation(projection, active=False)
        while True:
            head = self.store.head_position()
            self._advance(
                projection, self._generation(projection, fresh.generation), head, progress
            )
            built = self._generation(projection, fresh.generation)
            if built.status != "running":
                raise ProjectionStopped(
                    f"rebuilding {name} stopped at position {built.failed_position}: "
                    f"{built.error}; the previous generation keeps serving"
                )
            if built.position >= self.store.head_position():
                break  # appends may have come in meanwhile: go round until caught up
        model.activate(name, fresh.generation)
        return self._generation(projection, fresh.generation)

    def reset(self, name: str) -> None:
        """Forget a projection's read model and checkpoint: it starts again from position 0
        (also clears a stop)."""
        projection = self.projection(name)
        with self._lock:
            self.model(projection).drop(name)
