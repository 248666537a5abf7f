"""The bank with its balances in PostgreSQL: the read model beside a `postgresql://` store.

`balances_pg` keeps one row per account (balance, movements, the position of the last event
applied) in the table `balances_pg` of the read-model schema (the store's schema with `_rm`
after it); each batch of events and the projection's checkpoint are written in one
PostgreSQL transaction, so a crash never applies a batch twice or skips one.

It lives beside `eventbook.examples.bank` because it needs a PostgreSQL database: with a
`postgresql://` store the read models go to the same database by default::

    store = eb.open_store("postgresql://user@host:5432/db")
    models = open_read_models(store, {"sqlite", "postgres"})
    runner = eb.ProjectionRunner(store, bank_pg.app, models)
    runner.catch_up()
    bank_pg.balance(models["postgres"], "a1")          # 500
"""

from __future__ import annotations

import dataclasses
from typing import Any

import eventbook as eb
from eventbook.examples import bank

SIGNS = {"Deposited": 1, "TransferReceived": 1, "Withdrawn": -1, "TransferSent": -1}
TABLE = (
    "account_id text PRIMARY KEY, balance bigint NOT NULL, movements bigint NOT NULL, "
    "position bigint NOT NULL"
)


def _batch(tx: Any, batch: list[eb.RecordedEvent]) -> None:
    """A whole batch in a few statements: new accounts, then one update per account. It reads
    the recorded events' data (`raw_batch`: no typed event is decoded for it)."""
    opened = []
    moves: dict[str, list[int]] = {}  # account -> [amount, movements, last position]
    for recorded in batch:
        account = recorded.stream.removeprefix("account-")
        sign = SIGNS.get(recorded.type)
        if sign is None:
            opened.append((account, recorded.position))
            continue
        move = moves.setdefault(account, [0, 0, 0])
        move[0] += sign * recorded.data["amount"]
        move[1] += 1
        move[2] = recorded.position
    if opened:
        tx.executemany("INSERT INTO {balances_pg} VALUES (%s, 0, 0, %s)", opened)
    if moves:
        tx.executemany(
            "UPDATE {balances_pg} SET balance = balance + %s, movements = movements + %s, "
            "position = %s WHERE account_id = %s",
            [(amount, n, last, account) for account, (amount, n, last) in moves.items()],
        )


@eb.projection(
    "balances_pg",
    target="postgres",
    handles=["AccountOpened", *SIGNS],
    tables={"balances_pg": TABLE},
    batch_handler=_batch,
    raw_batch=True,
)
def balances_pg(tx: Any, event: eb.Event, recorded: eb.RecordedEvent) -> None:
    """Every account's balance, one row per account (the per-event path)."""
    account = recorded.stream.removeprefix("account-")
    if isinstance(event, bank.AccountOpened):
        tx.execute("INSERT INTO {balances_pg} VALUES (%s, 0, 0, %s)", (account, recorded.position))
        return
    tx.execute(
        "UPDATE {balances_pg} SET balance = balance + %s, movements = movements + 1, "
        "position = %s WHERE account_id = %s",
        (SIGNS[recorded.type] * event.amount, recorded.position, account),  # type: ignore[attr-defined]
    )


def balance(read_model: Any, account_id: str, min_position: int | None = None) -> int | None:
    """An account's balance from the PostgreSQL read model (None for an unknown account);
    with `min_position`, after the projection has applied that position."""
    rows = read_model.query(
        "SELECT balance FROM balances_pg WHERE account_id = %s",
        (account_id,),
        min_position=min_position,
        projections=["balances_pg"],
    )
    return rows[0][0] if rows else None


app = dataclasses.replace(bank.app, projections=[*bank.app.projections, balances_pg])
