"""The consumer helper: takes events from a broker and applies each one's effect exactly once,
in order per stream, different streams in parallel.

Each round fetches up to `fetch_count` messages from a durable consumer and splits them by a
hash of the stream id into `workers` partitions (so the events of one stream always fall in
the same partition, in broker order). Each partition is applied in one SQLite transaction on
a connection of its own: for each event the helper checks the processed-ids table, calls
`handler(db, event)` with the connection inside that transaction, and records the event id
and the stream's version in the same transaction. Only after the commit are the messages
acknowledged. So:

- killed before the commit: nothing of the batch is kept and the broker delivers it again;
- killed after the commit, before the acks: the broker delivers them again and the ids table
  says they were applied: they are acknowledged and skipped;
- a duplicate published by the relay (after its crash) is skipped the same way.

The next round starts once every partition of this one is done. A stream whose next event is
missing (version 7 after version 5: a delivery lost in transit) is not applied past the gap:
the helper rewinds the durable consumer to its ack floor, so the broker delivers everything
unacknowledged again in order. A handler that raises is retried event by event, `attempts`
times; then the consumer stops with ConsumerStopped naming the event (the events of other
partitions are applied, nothing after the failed one in its partition is).

The handler writes its effect through `db` (a sqlite3 connection in autocommit mode, inside
a transaction the helper opened): it must not commit, roll back or open another transaction.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from eventbook import limits
from eventbook.core.messages import RecordedEvent
from eventbook.errors import EventbookError, InvalidInput, StoreUnavailable
from eventbook.outbox.broker import Broker, BrokerConsumer, Delivery, subjects_for

log = logging.getLogger("eventbook.outbox")

Handler = Callable[[sqlite3.Connection, RecordedEvent], None]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS eventbook_outbox_processed (
    consumer TEXT NOT NULL, event_id TEXT NOT NULL, position INTEGER NOT NULL,
    stream TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS eventbook_outbox_streams (
    consumer TEXT NOT NULL, stream TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (consumer, stream)
) WITHOUT ROWID;
"""
GAP_REWINDS_MAX = 5  # rewinds that find the same stream gap again before the consumer stops


class ConsumerStopped(EventbookError):
    """The consumer stopped at an event it cannot apply (its handler kept failing, or the
    events before it never arrive). Nothing after it in its stream was applied."""

    exit_code = 1

    def __init__(self, consumer: str, event: RecordedEvent, why: str) -> None:
        self.consumer = consumer
        self.event = event
        self.why = why
        super().__init__(
            f"consumer {consumer} stopped at event {event.id} (position {event.position}, "
            f"stream {event.stream!r} version {event.version}): {why}. Fix the cause and start "
            "it again: it resumes at this event."
        )


class _HandlerFailed(Exception):
    def __init__(self, delivery: Delivery, error: BaseException) -> None:
        self.delivery = delivery
        self.error = error


@dataclass
class _Outcome:
    done: int = 0  # deliveries consumed (applied or skipped) and acknowledged
    applied: int = 0
    gap: Delivery | None = None
    failure: ConsumerStopped | None = None


def partition_of(stream: str, workers: int) -> int:
    """The partition of a stream: stable across processes and runs."""
    return zlib.crc32(stream.encode("utf-8", "surrogatepass")) % workers


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer {low}..{high}, got {value!r}")
    return value


class Consumer:
    """Applies the events of a broker's subjects to a SQLite database, exactly once each.

    def on_event(db, event):
        db.execute("INSERT INTO seen(stream, version) VALUES (?, ?)",
                   (event.stream, event.version))

    consumer = Consumer(broker, "billing", on_event, "billing.sqlite", categories=["order"])
    consumer.run_once()     # one fetch, applied and acknowledged; or start() / stop()
    """

    def __init__(
        self,
        broker: Broker,
        name: str,
        handler: Handler,
        database: str | Path,
        *,
        categories: Sequence[str] | None = None,
        workers: int = 4,
        fetch_count: int = 256,
        attempts: int = 3,
        retry_seconds: float = 0.5,
        synchronous: str = "FULL",
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(
                f"consumer name {name!r} is not allowed: use 1 to 64 letters, digits, '_' or '-'"
            )
        _check_int("workers", workers, 1, limits.outbox_workers_max)
        _check_int("fetch_count", fetch_count, 1, limits.outbox_fetch_count_max)
        _check_int("attempts", attempts, 1, 100)
        if synchronous not in ("FULL", "NORMAL"):
            raise InvalidInput(
                f"synchronous must be 'FULL' (effects survive power loss) or 'NORMAL' "
                f"(they survive a crash of the process), got {synchronous!r}"
            )
        self.broker = broker
        self.name = name
        self.handler = handler
        self.database = str(database)
        self.subjects = subjects_for(broker.subject_prefix, categories)
        self.workers = workers
        self.fetch_count = fetch_count
        self.attempts = attempts
        self.retry_seconds = retry_seconds
        self._dbs = [self._connect(synchronous) for _ in range(workers)]
        self._pool = ThreadPoolExecutor(workers, "eventbook-consumer") if workers > 1 else None
        self.applied = 0  # effects applied by this object
        self.skipped = 0  # duplicates acknowledged without applying
        self.rewinds = 0
        self.error: EventbookError | None = None
        self._gap_strikes: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: BrokerConsumer | None = broker.consumer(name, self.subjects)

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.database, isolation_level=None, check_same_thread=False, timeout=60.0
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(_SCHEMA)
        return db

    # -- one round ---------------------------------------------------------------------------

    def run_once(self, timeout: float = 0.2) -> int:
        """Fetch one batch (waiting up to `timeout` seconds for it), apply it and acknowledge
        it; returns how many messages were consumed (applied or skipped as duplicates)."""
        if self._source is None:
            self._source = self.broker.consumer(self.name, self.subjects)
        deliveries = self._source.fetch(self.fetch_count, timeout)
        if not deliveries:
            return 0
        groups: dict[int, list[Delivery]] = {}
        for d in deliveries:
            groups.setdefault(partition_of(d.event.stream, self.workers), []).append(d)
        if self._pool is None or len(groups) == 1:
            outcomes = [self._apply_group(p, g) for p, g in groups.items()]
        else:
            outcomes = list(self._pool.map(lambda item: self._apply_group(*item), groups.items()))
        done = sum(o.done for o in outcomes)
        self.applied += sum(o.applied for o in outcomes)
        self.skipped += done - sum(o.applied for o in outcomes)
        failure = next((o.failure for o in outcomes if o.failure), None)
        gaps = [o.gap for o in outcomes if o.gap is not None]
        if failure is not None or gaps:
            self._rewind()
        if failure is not None:
            raise failure
        for gap in gaps:
            key = (gap.event.stream, gap.event.version)
            strikes = self._gap_strikes[key] = self._gap_strikes.get(key, 0) + 1
            if strikes > GAP_REWINDS_MAX:
                raise ConsumerStopped(
                    self.name,
                    gap.event,
                    f"the events of its stream before version {gap.event.version} never "
                    f"arrived (after {GAP_REWINDS_MAX} rewinds); were they published?",
                )
        if not gaps and self._gap_strikes:
            self._gap_strikes.clear()
        return done

    def _rewind(self) -> None:
        """Reopen the durable consumer at its ack floor: what is unacknowledged comes again."""
        self.rewinds += 1
        if self._source is not None:
            self._source.close()
        self._source = None
        self._source = self.broker.consumer(self.name, self.subjects)

    def _apply_group(self, partition: int, deliveries: list[Delivery]) -> _Outcome:
        db = self._dbs[partition]
        outcome = _Outcome()
        try:
            self._transaction(db, deliveries, outcome)
            return outcome
        except _HandlerFailed:
            pass  # find the failing event: one at a time, each with its retries
        for d in deliveries:
            for attempt in range(1, self.attempts + 1):
                try:
                    self._transaction(db, [d], outcome)
                    break
                except _HandlerFailed as failed:
                    if attempt == self.attempts:
                        outcome.failure = ConsumerStopped(
                            self.name,
                            d.event,
                            f"its handler failed {self.attempts} times, last with "
                            f"{type(failed.error).__name__}: {failed.error}",
                        )
                        return outcome
                    time.sleep(min(self.retry_seconds * attempt, 5.0))
            if outcome.gap is not None:
                return outcome
        return outcome

    def _transaction(
        self, db: sqlite3.Connection, deliveries: list[Delivery], out: _Outcome
    ) -> None:
        """Apply `deliveries` (up to a stream gap) in one transaction, then acknowledge them."""
        consumed: list[Delivery] = []
        applied = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            for d in deliveries:
                step = self._step(db, d)
                if step == "gap":
                    out.gap = d
                    break
                consumed.append(d)
                applied += step == "applied"
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        for d in consumed:
            self._source.ack(d)  # type: ignore[union-attr]
        out.done += len(consumed)
        out.applied += applied

    def _step(self, db: sqlite3.Connection, d: Delivery) -> str:
        event = d.event
        if db.execute(
            "SELECT 1 FROM eventbook_outbox_processed WHERE consumer=? AND event_id=?",
            (self.name, event.id),
        ).fetchone():
            return "duplicate"
        row = db.execute(
            "SELECT version FROM eventbook_outbox_streams WHERE consumer=? AND stream=?",
            (self.name, event.stream),
        ).fetchone()
        last = row[0] if row else 0
        if last and event.version <= last:
            return "duplicate"  # applied already (its stream is past it), under another id
        if last and event.version != last + 1:
            return "gap"
        try:
            self.handler(db, event)
        except Exception as error:
            raise _HandlerFailed(d, error) from error
        if not db.in_transaction:
            raise InvalidInput(
                f"consumer {self.name}: the handler ended the helper's transaction (at event "
                f"{event.id}); it must not commit or roll back: the helper commits the effect "
                "together with the event id"
            )
        db.execute(
            "INSERT INTO eventbook_outbox_processed VALUES (?, ?, ?, ?, ?)",
            (self.name, event.id, event.position, event.stream, event.version),
        )
        db.execute(
            "INSERT INTO eventbook_outbox_streams VALUES (?, ?, ?) "
            "ON CONFLICT (consumer, stream) DO UPDATE SET version=excluded.version",
            (self.name, event.stream, event.version),
        )
        return "applied"

    # -- queries -----------------------------------------------------------------------------

    def processed(self, event_id: str) -> bool:
        """Whether the effect of the event with this id was applied (and committed)."""
        return bool(
            self._dbs[0]
            .execute(
                "SELECT 1 FROM eventbook_outbox_processed WHERE consumer=? AND event_id=?",
                (self.name, event_id),
            )
            .fetchone()
        )

    def stream_version(self, stream: str) -> int:
        """The version of the last event of `stream` applied (0 when none)."""
        row = (
            self._dbs[0]
            .execute(
                "SELECT version FROM eventbook_outbox_streams WHERE consumer=? AND stream=?",
                (self.name, stream),
            )
            .fetchone()
        )
        return row[0] if row else 0

    # -- following -------------------------------------------------------------------------

    def run(
        self, idle_wait: float = 0.2, progress: Callable[[Consumer], None] | None = None
    ) -> None:
        """Apply events until `stop()`. A broker that is unavailable is retried every
        `retry_seconds` (the durable consumer reopened); ConsumerStopped ends the run (and is
        kept in `error`)."""
        while not self._stop.is_set():
            try:
                self.run_once(idle_wait)
            except StoreUnavailable as error:
                if self.error is None:
                    log.warning("consumer %s: %s; retrying", self.name, error)
                self.error = error
                self._source = None  # reopened on the next round
                self._stop.wait(self.retry_seconds)
                continue
            except ConsumerStopped as error:
                self.error = error
                raise
            else:
                self.error = None
            if progress is not None:
                progress(self)

    def start(self) -> Consumer:
        assert self._thread is None, "the consumer is running already"
        self._stop.clear()

        def main() -> None:
            try:
                self.run()
            except ConsumerStopped as error:
                log.error("%s", error)

        self._thread = threading.Thread(target=main, name=f"consumer-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        self.stop()
        if self._pool is not None:
            self._pool.shutdown()
        if self._source is not None:
            self._source.close()
            self._source = None
        for db in self._dbs:
            db.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Consumer", "ConsumerStopped", "Handler", "partition_of"]
