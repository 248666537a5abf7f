"""What a projection declares: a name, a version, the event types it handles, a handler.

A projection keeps a read model (seed 002's query side) up to date from the global log. Its
handler gets a transaction of its read model (`tx`), the typed event (decoded through the
application's upcasters; None for events of types the application does not declare) and the
recorded event. The runner writes the checkpoint in the same transaction as the handler's
changes, so each event's effect is applied exactly once.

Bumping `version` rebuilds the projection from position 0 into a new generation of its tables
while the old generation keeps serving, then switches (blue/green).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventbook.core.messages import RecordedEvent
from eventbook.errors import InvalidInput

Handler = Callable[[Any, Any, RecordedEvent], None]


class ProjectionStopped(InvalidInput):
    """A projection is stopped at a failing event; it will not get further until reset or
    rebuilt (exit code 2 from the CLI)."""


BatchHandler = Callable[[Any, Sequence[Any]], None]


class RecordedBatch(Sequence[tuple[RecordedEvent, Any]]):
    """A batch for a projection declared with `raw_batch=True`: its recorded events, no typed
    events decoded, read from the log while the batch handler iterates `records()` (a rebuild
    folds each event as it is read instead of holding thousands in memory first). Each call of
    `records()` reads them again: the log does not change. To anyone who takes it as the usual
    sequence of `(recorded, event)` pairs (a read model calling the per-event handler) it is
    those pairs, read into a list and decoded by `typed` the first time it is asked that way."""

    __slots__ = ("_items", "_pairs", "_read", "_typed", "count")

    def __init__(
        self,
        read: Callable[[], Iterable[RecordedEvent]],
        typed: Callable[[RecordedEvent], Any] | None = None,
    ) -> None:
        self._read = read
        self._typed = typed  # recorded -> typed event (None: no typed events)
        self._items: list[RecordedEvent] | None = None
        self._pairs: list[tuple[RecordedEvent, Any]] | None = None
        self.count: int | None = None  # how many events a full reading gave (set by `read`)

    @classmethod
    def of(
        cls, records: list[RecordedEvent], typed: Callable[[RecordedEvent], Any] | None = None
    ) -> RecordedBatch:
        batch = cls(lambda: records, typed)
        batch._items = records
        batch.count = len(records)
        return batch

    def records(self) -> Iterator[RecordedEvent]:
        """The batch's recorded events, in position order."""
        return iter(self._items if self._items is not None else self._read())

    def _list(self) -> list[tuple[RecordedEvent, Any]]:
        if self._pairs is None:
            if self._items is None:
                self._items = list(self._read())
            typed = self._typed
            self._pairs = [(r, typed(r) if typed else None) for r in self._items]
        return self._pairs

    def __len__(self) -> int:
        if self._items is None:
            self._items = list(self._read())
        return len(self._items)

    def __getitem__(self, index: Any) -> Any:
        return self._list()[index]

    def __iter__(self) -> Iterator[tuple[RecordedEvent, Any]]:
        return iter(self._list())


@dataclass(frozen=True)
class Projection:
    """A read model kept from the log.

    `target`: which read model holds it: "sqlite" (tables; the embedded default), "fts" (SQLite
    FTS5 full-text tables, same file) or "redis" (key-value).
    `tables`: for SQL targets, table name -> column definitions (the CREATE TABLE body); each
    generation gets its own physical tables and the plain names are views on the active one.
    `handles`: the event types it handles (empty: every event).
    `batch_handler`: optional; gets `(tx, [(recorded, event), ...])` for a whole batch so it can
    fold many events into a few writes (a rebuild's fast path). It must leave the read model as
    the per-event handler would.
    `raw_batch`: the batch handler gets `(tx, records)`, the recorded events alone, and reads
    their `data` dicts: no typed event is decoded for it (the costliest step of a rebuild
    after reading the log). `records` is an iterable read from the log as the handler goes
    through it, once. Data stored at an older schema version still comes lifted through the
    application's upcasters; it is not validated against the event class. Without a batch
    handler it has no effect.
    """

    name: str
    handler: Handler
    version: int = 1
    handles: frozenset[str] = frozenset()
    target: str = "sqlite"
    tables: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Any], None] | None = None  # extra set-up in a new generation (indexes)
    batch_handler: BatchHandler | None = None  # handles a whole batch at once (see below)
    raw_batch: bool = False  # the batch handler gets recorded events, no typed ones

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name.startswith("eventbook"):
            raise InvalidInput(
                f"projection name {self.name!r} must be an identifier (letters, digits, '_') "
                "not starting with 'eventbook'"
            )
        if type(self.version) is not int or self.version < 1:
            raise InvalidInput(f"projection {self.name}: version must be an integer >= 1")
        object.__setattr__(self, "handles", frozenset(self.handles))

    @property
    def raw(self) -> bool:
        """Whether the batch handler takes recorded events alone (`raw_batch`); without a
        batch handler `raw_batch` has no effect: the handler gets typed events."""
        return self.raw_batch and self.batch_handler is not None

    def wants(self, event_type: str) -> bool:
        return not self.handles or event_type in self.handles

    def apply_batch(self, tx: Any, batch: Sequence[tuple[RecordedEvent, Any]]) -> None:
        """Run the projection on a batch inside a read model's transaction: its batch handler
        when it has one (it may fold the batch into fewer writes), else the handler per event.
        Both must give the same read model. With `raw_batch` the batch handler gets the
        recorded events alone: a `RecordedBatch`'s `records()`, read as it iterates them."""
        if self.raw:
            if isinstance(batch, RecordedBatch):
                self.batch_handler(tx, batch.records())  # type: ignore[misc]
            elif batch:
                self.batch_handler(tx, [recorded for recorded, _ in batch])  # type: ignore[misc]
            return
        if self.batch_handler is not None:
            if batch:
                self.batch_handler(tx, batch)
            return
        handler = self.handler
        for recorded, event in batch:
            handler(tx, event, recorded)


def projection(
    name: str,
    *,
    version: int = 1,
    handles: Iterable[str] = (),
    target: str = "sqlite",
    tables: dict[str, str] | None = None,
    setup: Callable[[Any], None] | None = None,
    batch_handler: BatchHandler | None = None,
    raw_batch: bool = False,
) -> Callable[[Handler], Projection]:
    """Declare a projection with a decorator::

    @eb.projection("balances", handles=["Deposited", "Withdrawn"],
                   tables={"balances": "account_id TEXT PRIMARY KEY, balance INTEGER NOT NULL"})
    def balances(tx, event, recorded): ...
    """

    def declare(handler: Handler) -> Projection:
        return Projection(
            name,
            handler,
            version,
            frozenset(handles),
            target,
            dict(tables or {}),
            setup,
            batch_handler,
            raw_batch,
        )

    return declare


@dataclass
class Generation:
    """One generation of a projection's read model, and its checkpoint."""

    name: str
    generation: int
    version: int
    position: int = 0  # the checkpoint: every event up to here is applied
    active: bool = False  # the one queries see
    status: str = "running"  # running | stopped
    error: str = ""
    failed_position: int = 0
    updated_at: datetime | None = None


@dataclass
class ProjectionStatus:
    name: str
    version: int
    target: str
    position: int  # the active generation's checkpoint
    lag: int  # events behind the head
    lag_seconds: float  # how long ago the oldest unapplied event was recorded (0 if none)
    status: str  # running | stopped | rebuilding | new
    error: str = ""
    failed_position: int = 0
    rebuilding: Generation | None = None
