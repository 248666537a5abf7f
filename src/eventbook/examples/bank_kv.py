"""The bank with one more read model: every account as a Redis hash, "O(1) by key".

`account_kv` keeps, for each account, the hash ``account:{id}`` with its ``balance``,
``movements`` and the ``position`` of the last event applied to it: a service answering "what
is the balance of a1" reads one key, and the Redis server can be shared by many readers.

It lives in a module of its own, beside `eventbook.examples.bank`, because a Redis read model
needs a running Redis server: the bank app (`eventbook.examples.bank:app`) keeps working with the
embedded SQLite read models only, and this app is the bank plus the key-value view. The
Redis server's URL is given to `open_read_models` (or taken from `EVENTBOOK_REDIS_URL`)::

    from eventbook.read_models import open_read_models

    models = open_read_models(store, {"sqlite", "redis"}, redis="redis://127.0.0.1:6379/0")
    runner = eb.ProjectionRunner(store, bank_kv.app, models)
    runner.catch_up()
    bank_kv.account(runner.read_models["redis"], "a1")  # {"balance": 500, "movements": 2, ...}
"""

from __future__ import annotations

import dataclasses
from typing import Any

import eventbook as eb
from eventbook.examples import bank


def account_key(account_id: str) -> str:
    return f"account:{account_id}"


def movement(event: eb.Event) -> int:
    """How much an event moves its account's balance."""
    match event:
        case bank.Deposited(amount=amount) | bank.TransferReceived(amount=amount):
            return amount
        case bank.Withdrawn(amount=amount) | bank.TransferSent(amount=amount):
            return -amount
    return 0


@eb.projection(
    "account_kv",
    target="redis",
    handles=["AccountOpened", "Deposited", "Withdrawn", "TransferSent", "TransferReceived"],
)
def account_kv(tx, event: eb.Event, recorded: eb.RecordedEvent) -> None:
    """One hash per account: its balance, its number of movements, its last position."""
    key = account_key(recorded.stream.removeprefix("account-"))
    if isinstance(event, bank.AccountOpened):
        tx.hset(key, {"balance": 0, "movements": 0, "position": recorded.position})
        return
    tx.hincrby(key, "balance", movement(event))
    tx.hincrby(key, "movements", 1)
    tx.hset(key, "position", recorded.position)


def account(read_model: Any, account_id: str) -> dict[str, int] | None:
    """An account's view from the Redis read model (None for an account it has not seen)."""
    found = read_model.hgetall("account_kv", account_key(account_id))
    return {field: int(value) for field, value in found.items()} or None


app = dataclasses.replace(bank.app, projections=[*bank.app.projections, account_kv])
