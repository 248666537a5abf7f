"""eventbook as the benchmarks drive it: through its public API only (`eventbook.open_store`,
`eventbook.Engine` running the bank example's commands, and `eventbook.ProjectionRunner` keeping
the bank example's `balances` projection in its SQLite read model)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import eventbook as eb
from eventbook.examples import bank
from eventbook.read_models import ReadModel, open_read_models

LABEL = "eventbook"
STREAM_EVENTS = 100  # events per stream when loading, like the peer's 100 events per aggregate


def is_memory(location: str) -> bool:
    return location.startswith("memory:")


def open_ours(location: str, **options: Any) -> eb.EventStore:
    """Open the store at `location` (a path, or memory:// which takes no options)."""
    if is_memory(location):
        return eb.open_store(location)
    return eb.open_store(location, **options)


def appender(store: eb.EventStore, writer: int) -> Callable[[int], None]:
    """A function that appends `count` events to this writer's stream in one commit."""
    stream = f"account-{writer}"

    def append(count: int) -> None:
        store.append([eb.NewEvent(stream, "Deposited", {"amount": 1}) for _ in range(count)])

    return append


def load(
    store: eb.EventStore, events: int, batch: int, on_commit: Callable[[int], None] | None = None
) -> None:
    """Append `events` events, `batch` per commit, in streams of STREAM_EVENTS events."""
    done = 0
    while done < events:
        count = min(batch, events - done)
        store.append(
            [
                eb.NewEvent(f"account-{(done + i) // STREAM_EVENTS}", "Deposited", {"amount": 1})
                for i in range(count)
            ]
        )
        done += count
        if on_commit is not None:
            on_commit(count)


def read_all(store: eb.EventStore) -> Iterator[Any]:
    """Every event, decoded: what a projection sees (its data dict)."""
    for event in store.read_all():
        yield event.data


def read_nth(store: eb.EventStore, n: int) -> eb.RecordedEvent:
    """The Nth event of the global order (decoded, data included)."""
    return next(store.read_all(after=n - 1, limit=1))


def open_close(location: str) -> None:
    """Open as a user does, ask for the head position (ready to serve), close."""
    store = open_ours(location)
    store.head_position()
    store.close()


# -- the command engine (bank example) ----------------------------------------------------------


def bank_app(snapshot_every: int) -> eb.Application:
    """The bank example's application, saving a stream's state every `snapshot_every` events."""
    return dataclasses.replace(bank.app, snapshot_every=snapshot_every)


def account_stream(account: str) -> str:
    return bank.account_stream(account)


def load_account(
    engine: eb.Engine,
    account: str,
    events: int,
    on_command: Callable[[int], None] | None = None,
    interleave: int = 0,
) -> None:
    """A stream of `events` events written through the engine, one command (and commit) per
    event: OpenAccount, then Deposits; `on_command(1)` after each. With `interleave`, that
    many Deposits on another account follow each one, so the stream's events are not
    neighbours in the log (as when many accounts are busy at once)."""
    engine.execute(bank.OpenAccount(account_id=account))
    deposit = bank.Deposit(account_id=account, amount=1)
    other = bank.Deposit(account_id=f"{account}-other", amount=1)
    if interleave:
        engine.execute(bank.OpenAccount(account_id=other.account_id))
    for _ in range(events - 1):
        engine.execute(deposit)
        for _ in range(interleave):
            engine.execute(other)
        if on_command is not None:
            on_command(1)


def depositor(engine: eb.Engine, writer: int) -> Callable[[int], None]:
    """A function that handles `count` Deposit commands on this writer's account (opened here),
    one command (and one commit) each."""
    account = f"w{writer}"
    engine.execute(bank.OpenAccount(account_id=account))
    deposit = bank.Deposit(account_id=account, amount=1)
    execute = engine.execute

    def handle(count: int) -> None:
        for _ in range(count):
            execute(deposit)

    return handle


# -- projections (bank example: the balances table) ---------------------------------------------

BALANCES = "balances"


def balances_app() -> eb.Application:
    """The bank example's application with its `balances` projection only."""
    return dataclasses.replace(bank.app, projections=[bank.balances])


def load_bank(
    store: eb.EventStore,
    plan: Iterable[tuple[int, str, int]],
    batch: int,
    on_commit: Callable[[int], None] | None = None,
) -> None:
    """Append the bank events of `plan` ((account index, event type, amount), in log order),
    `batch` per commit, as the bank's engine would record them: stream `account-a<i>`,
    AccountOpened {account_id}, Deposited / Withdrawn {amount}."""
    events: list[eb.NewEvent] = []
    for account, kind, amount in plan:
        name = f"a{account}"
        data = {"account_id": name} if kind == "AccountOpened" else {"amount": amount}
        events.append(eb.NewEvent(bank.account_stream(name), kind, data))
        if len(events) == batch:
            store.append(events)
            if on_commit is not None:
                on_commit(len(events))
            events = []
    if events:
        store.append(events)
        if on_commit is not None:
            on_commit(len(events))


def read_models(store: eb.EventStore, *, readonly: bool = False) -> dict[str, ReadModel]:
    """The store's SQLite read models (beside an embedded log's files; in memory otherwise)."""
    return open_read_models(store, {"sqlite"}, readonly=readonly)


def projection_runner(store: eb.EventStore, models: dict[str, ReadModel]) -> eb.ProjectionRunner:
    return eb.ProjectionRunner(store, balances_app(), models)


def balances_rows(model: ReadModel) -> dict[str, tuple[int, int]]:
    """account id -> (balance, movements), read from the active `balances` table."""
    rows = model.query("SELECT account_id, balance, movements FROM balances")  # type: ignore[attr-defined]
    return {r[0]: (r[1], r[2]) for r in rows}


def visible_position(model: ReadModel) -> int:
    """The newest position whose row is visible in the `balances` table."""
    row = model.query("SELECT max(position) FROM balances")  # type: ignore[attr-defined]
    return row[0][0] or 0
