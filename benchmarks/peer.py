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

For the projections' benchmark: a `BankAccount` aggregate (Created, Deposited, Withdrawn) in a
`Bank` application, and a `balances` projection run by the library's `ProjectionRunner` into a
`SQLiteTrackingRecorder` subclass (the balances table and the tracking record written in one
transaction per event, the library's pattern for a materialised view). The library's SQLite
application recorder has no subscriptions (`subscribe()` raises NotImplementedError in 9.5.6;
POPO and PostgreSQL have them), so `SubscribingSQLiteRecorder` adds one, made of the library's own
`ListenNotifySubscription` (as its POPO and PostgreSQL subscriptions are), woken by inserts in
this process and polled every 50 ms otherwise; it is configured through the library's
`APPLICATION_RECORDER_TOPIC` setting.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import ListenNotifySubscription, StoredEvent, Tracking
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteTrackingRecorder
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


# -- projections (bench_projections.py): the bank and its balances table ------------------------


class BankAccount(Aggregate):
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.balance += amount

    @event("Withdrawn")
    def withdraw(self, amount: int) -> None:
        self.balance -= amount


class Bank(Application[UUID]):
    name = "Bank"


POLL_SECONDS = 0.05  # as eventbook's ProjectionRunner.start(poll_seconds=0.05)


class SubscribingSQLiteRecorder(SQLiteApplicationRecorder):
    """The library's SQLite application recorder with `subscribe()`: a ListenNotifySubscription
    woken when any recorder of this process has inserted into the same database file (as the
    library's POPO recorder wakes its subscriptions), and every POLL_SECONDS otherwise."""

    _listeners: ClassVar[dict[str, set[threading.Event]]] = {}
    _listeners_lock: ClassVar[threading.Lock] = threading.Lock()

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        returning = super().insert_events(stored_events, **kwargs)  # committed here
        with self._listeners_lock:
            woken = list(self._listeners.get(self.datastore.pool.db_name, ()))
        for listener in woken:
            listener.set()
        return returning

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Any:
        return _WokenSubscription(self, gt, topics)

    def listen(self, listener: threading.Event) -> None:
        with self._listeners_lock:
            self._listeners.setdefault(self.datastore.pool.db_name, set()).add(listener)

    def unlisten(self, listener: threading.Event) -> None:
        with self._listeners_lock:
            self._listeners.get(self.datastore.pool.db_name, set()).discard(listener)


class _WokenSubscription(ListenNotifySubscription[SubscribingSQLiteRecorder]):
    def __init__(
        self, recorder: SubscribingSQLiteRecorder, gt: int | None, topics: Sequence[str]
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        recorder.listen(self._has_been_notified)
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._has_been_stopped:
            time.sleep(POLL_SECONDS)
            self._has_been_notified.set()

    def stop(self) -> None:
        super().stop()
        self._recorder.unlisten(self._has_been_notified)


class BalancesView(SQLiteTrackingRecorder):
    """The materialised view: a balances table (the same columns as eventbook's) whose rows
    change in the same transaction as the tracking record. `SYNCHRONOUS` None leaves SQLite's
    default (FULL: the WAL is synced at each commit); "NORMAL" is eventbook's read-model setting."""

    SYNCHRONOUS: ClassVar[str | None] = None

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        if self.SYNCHRONOUS is not None:  # on every connection the pool makes from now on
            pool = datastore.pool
            create = pool._create_connection
            pragma = f"PRAGMA synchronous={self.SYNCHRONOUS}"

            def create_with_pragma() -> Any:
                connection = create()
                connection.cursor().execute(pragma)
                return connection

            pool._create_connection = create_with_pragma
        super().__init__(datastore, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS balances (account_id TEXT PRIMARY KEY, "
            "balance INTEGER NOT NULL, movements INTEGER NOT NULL, position INTEGER NOT NULL)",
        ]

    def open_account(self, account_id: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO balances VALUES (?, 0, 0, ?)", (account_id, tracking.notification_id)
            )
            self._insert_tracking(c, tracking)

    def move(self, account_id: str, amount: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "UPDATE balances SET balance = balance + ?, movements = movements + 1, "
                "position = ? WHERE account_id = ?",
                (amount, tracking.notification_id, account_id),
            )
            self._insert_tracking(c, tracking)


class NormalBalancesView(BalancesView):
    SYNCHRONOUS = "NORMAL"


class Balances(Projection[BalancesView]):
    """The balances projection. `until`: the notification id at which `reached` is set (and
    `reached_at` taken); `last`: the last notification id processed (for a progress bar)."""

    name = "balances"
    until: ClassVar[int] = 0
    reached: ClassVar[threading.Event]
    reached_at: ClassVar[float] = 0.0
    last: ClassVar[int] = 0

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)
        self._track(tracking)

    @process_event.register(BankAccount.Created)
    def _created(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.open_account(domain_event.originator_id.hex, tracking)
        self._track(tracking)

    @process_event.register(BankAccount.Deposited)
    def _deposited(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.move(domain_event.originator_id.hex, domain_event.amount, tracking)
        self._track(tracking)

    @process_event.register(BankAccount.Withdrawn)
    def _withdrawn(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.move(domain_event.originator_id.hex, -domain_event.amount, tracking)
        self._track(tracking)

    def _track(self, tracking: Tracking) -> None:
        cls = type(self)
        cls.last = tracking.notification_id
        if tracking.notification_id >= cls.until and not cls.reached.is_set():
            cls.reached_at = time.perf_counter()
            cls.reached.set()


def balances_projection(until: int) -> type[Balances]:
    """A Balances class of its own for one runner, signalling when `until` is processed."""
    return type(
        "Balances",
        (Balances,),
        {"name": "balances", "until": until, "reached": threading.Event(), "last": 0},
    )


def bank_env(app_db: Path | str, view_db: Path | str) -> dict[str, str]:
    """The application on `app_db`; the projection's view (env prefix BALANCES_) on `view_db`."""
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(app_db),
        "APPLICATION_RECORDER_TOPIC": get_topic(SubscribingSQLiteRecorder),
        "BALANCES_SQLITE_DBNAME": str(view_db),
    }


def open_bank(app_db: Path | str) -> Bank:
    """The application alone (writing the log, reading it back)."""
    return Bank(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(app_db)})


def bank_runner(
    app_db: Path | str, view_db: Path | str, view_class: type[BalancesView], until: int
) -> ProjectionRunner[Bank, BalancesView]:
    """The library's ProjectionRunner: constructs the application and the view and starts
    processing (from the view's tracking position) in its own thread."""
    return ProjectionRunner(
        application_class=Bank,
        projection_class=balances_projection(until),
        view_class=view_class,
        env=bank_env(app_db, view_db),
    )


def load_bank(
    app: Bank,
    plan: Iterable[tuple[int, str, int]],
    batch: int,
    on_commit: Callable[[int], None] | None = None,
) -> list[UUID]:
    """Record the bank events of `plan` ((account index, event type, amount)), `batch` events
    per save (every account touched by them, saved together); returns the account ids by
    index. Within a save the library records each aggregate's events together."""
    accounts: list[BankAccount] = []
    touched: dict[int, BankAccount] = {}
    pending = 0
    for index, kind, amount in plan:
        if kind == "AccountOpened":
            account = BankAccount(f"a{index}")
            accounts.append(account)
        else:
            account = accounts[index]
            if kind == "Deposited":
                account.deposit(amount)
            else:
                account.withdraw(amount)
        touched[index] = account
        pending += 1
        if pending == batch:
            app.save(*touched.values())
            if on_commit is not None:
                on_commit(pending)
            touched, pending = {}, 0
    if pending:
        app.save(*touched.values())
        if on_commit is not None:
            on_commit(pending)
    return [a.id for a in accounts]


def view_settings(view: BalancesView) -> dict[str, Any]:
    with view.datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {
        "journal_mode": journal_mode,
        "synchronous": f"{synchronous} ({names.get(synchronous)})",
    }


def balances_rows(view_db: Path | str) -> dict[str, tuple[int, int]]:
    """account id (hex) -> (balance, movements), read from the view's file."""
    with closing(sqlite3.connect(f"file:{view_db}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT account_id, balance, movements FROM balances").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def visible_reader(view_db: Path | str) -> Callable[[], int]:
    """A function giving the newest position whose row is visible in the view's balances table
    (its own read-only connection; call it from one thread)."""
    db = sqlite3.connect(f"file:{view_db}?mode=ro", uri=True, check_same_thread=False)

    def visible() -> int:
        return db.execute("SELECT max(position) FROM balances").fetchone()[0] or 0

    return visible
