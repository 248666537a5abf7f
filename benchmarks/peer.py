"""The peer: the Python `eventsourcing` library 9.5.x on SQLite, configured as its users get it.

`PERSISTENCE_MODULE=eventsourcing.sqlite`, `SQLITE_DBNAME=<file>`, nothing else. The library
switches the database to WAL journal mode and leaves `synchronous` at SQLite's default (FULL):
every commit fdatasyncs the WAL file before it returns, so it is durable like eventbook's
default. `settings()` reads both PRAGMAs from the running connection so each run reports them.

Two layers are measured: an `Application` saving a simple `Aggregate` (what a user of the
library writes; the figure the ratios use) and, for context, its `SQLiteApplicationRecorder`
fed with ready-made `StoredEvent`s (the library's floor: no aggregate, no mapper).

For the command engine's benchmark, `open_app(db, snapshot_every=100)` gives the application
`snapshotting_intervals = {Account: 100}`: the library's own snapshotting, in the same file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

LABEL = "eventsourcing (Application)"
RECORDER_LABEL = "eventsourcing (recorder)"
AGGREGATE_EVENTS = 100  # events per aggregate when loading (1 Created + 99 Deposited)


class Account(Aggregate):
    def __init__(self) -> None:
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.balance += amount


class BenchApp(Application[Any]):
    pass


def open_app(db_path: Path | str, snapshot_every: int = 0) -> BenchApp:
    """The application on `db_path`; with `snapshot_every`, an `Account` is snapshotted each
    time its version reaches a multiple of it (`snapshotting_intervals`), and loads start from
    the latest snapshot."""
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db_path)}
    if not snapshot_every:
        return BenchApp(env=env)
    return snapshotting_app_class(snapshot_every)(env=env)


def snapshotting_app_class(snapshot_every: int) -> type[BenchApp]:
    return type(
        "SnapshottingBenchApp", (BenchApp,), {"snapshotting_intervals": {Account: snapshot_every}}
    )


def settings(app: BenchApp) -> dict[str, Any]:
    """The library's version and the SQLite settings its connections actually run with."""
    datastore = app.factory.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
        cursor.execute("SELECT sqlite_version()")
        sqlite_version = cursor.fetchone()[0]
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {
        "library": f"eventsourcing {version('eventsourcing')}",
        "sqlite": sqlite_version,
        "journal_mode": journal_mode,
        "synchronous": f"{synchronous} ({names.get(synchronous, '?')})",
        "env": "PERSISTENCE_MODULE=eventsourcing.sqlite SQLITE_DBNAME=<file in --dir>",
    }


def app_appender(app: BenchApp) -> Callable[[int], None]:
    """`count` Deposited events on one Account per save; the account is created here."""
    account = Account()
    app.save(account)

    def append(count: int) -> None:
        for _ in range(count):
            account.deposit(1)
        app.save(account)

    return append


def recorder_appender(app: BenchApp) -> Callable[[int], None]:
    """`count` StoredEvents of one originator per insert_events call."""
    recorder = app.recorder
    originator_id = uuid4()
    topic = get_topic(Account.Deposited)  # type: ignore[attr-defined]
    state = b'{"amount":1}'
    next_version = 1

    def append(count: int) -> None:
        nonlocal next_version
        first = next_version
        next_version += count
        recorder.insert_events(
            [StoredEvent(originator_id, v, topic, state) for v in range(first, next_version)]
        )

    return append


def load(
    app: BenchApp, events: int, batch: int, on_commit: Callable[[int], None] | None = None
) -> None:
    """Save `events` events, about `batch` per save, as aggregates of AGGREGATE_EVENTS events."""
    done = 0
    while done < events:
        count = min(batch, events - done)
        aggregates = []
        left = count
        while left:
            account = Account()
            size = min(AGGREGATE_EVENTS, left)
            for _ in range(size - 1):
                account.deposit(1)
            aggregates.append(account)
            left -= size
        app.save(*aggregates)
        done += count
        if on_commit is not None:
            on_commit(count)


def load_account(
    app: BenchApp,
    events: int,
    batch: int,
    on_commit: Callable[[int], None] | None = None,
    interleave: int = 0,
) -> Any:
    """One Account of `events` events (Created, then Deposited), `batch` events per save;
    returns its id. With `interleave`, each save also holds that many events of another
    Account per event of this one."""
    account = Account()
    other = Account() if interleave else None
    pending = 1
    done = 0
    while done < events:
        while pending < batch and done + pending < events:
            account.deposit(1)
            pending += 1
        if other is not None:
            for _ in range(pending * interleave):
                other.deposit(1)
        app.save(account, other)
        done += pending
        if on_commit is not None:
            on_commit(pending)
        pending = 0
    return account.id


def read_all(app: BenchApp, page: int) -> Iterator[Any]:
    """Every event, decoded into its domain event object, in pages of `page` notifications."""
    to_domain_event = app.mapper.to_domain_event
    for notification in read_all_raw(app, page):
        yield to_domain_event(notification)


def read_all_raw(app: BenchApp, page: int) -> Iterator[Any]:
    """Every notification (stored bytes, not decoded), in pages of `page`."""
    select = app.recorder.select_notifications
    last = 0
    while True:
        notifications = select(start=last, limit=page, inclusive_of_start=False)
        if not notifications:
            return
        yield from notifications
        last = notifications[-1].id


def read_nth(app: BenchApp, n: int) -> Any:
    (notification,) = app.recorder.select_notifications(start=n, limit=1)
    return app.mapper.to_domain_event(notification)


def open_close(db_path: Path | str) -> None:
    """Construct the application on an existing database, ask for the head, close."""
    app = open_app(db_path)
    app.recorder.max_notification_id()
    app.close()
