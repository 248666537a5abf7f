"""Helpers of the audit tests: a test clock, stores of each backend, a bank history, and a
deliberately nondeterministic decider (it reads the wall clock, which `--redecide` catches)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import eventbook as eb
from eventbook.examples import bank

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """Each reading moves on by a millisecond: distinct, increasing times."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def open_kind(kind: str, where: Path | str, clock: Clock, name: str = "") -> eb.EventStore:
    if kind == "memory":
        return eb.open_store("memory://", clock=clock)
    if kind == "postgres":
        return eb.open_store(str(where), schema=name, clock=clock)
    if kind == "nats":
        return eb.open_store(str(where), stream=name, clock=clock)
    return eb.open_store(str(where), clock=clock)


def bank_history(engine: eb.Engine, commands: int, seed: int = 7) -> None:
    """A random bank history of `commands` commands (deposits, withdrawals, transfers, some
    rejected), with actors and reasons."""
    rng = random.Random(seed)
    accounts = [f"a{i}" for i in range(5)]
    for a in accounts:
        engine.run("OpenAccount", {"account_id": a}, metadata={"actor": "clerk"})
    for i in range(commands - len(accounts)):
        a, b = rng.sample(accounts, 2)
        amount = rng.randint(1, 100)
        kind = rng.choice(["Deposit", "Withdraw", "Transfer"])
        data = (
            {"from_account": a, "to_account": b, "amount": amount}
            if kind == "Transfer"
            else {"account_id": a, "amount": amount}
        )
        engine.run(kind, data, metadata={"actor": rng.choice(["ann", "bob"]), "reason": f"r{i}"})


# -- a decider that reads the clock (a bug --redecide must catch) -------------------------------


class DepositStamped(eb.Event, tag="DepositStamped"):
    amount: int
    at_ns: int


def _clocky_decide(command: eb.Command, state: bank.Account, ctx: eb.Context) -> eb.Decision:
    if isinstance(command, bank.Deposit) and state.opened:
        return [DepositStamped(amount=command.amount, at_ns=time.time_ns())]  # the bug
    return bank.decide(command, state, ctx)


def _clocky_evolve(state: bank.Account, event: eb.Event) -> bank.Account:
    if isinstance(event, DepositStamped):
        return bank.evolve(state, bank.Deposited(amount=event.amount))
    return bank.evolve(state, event)


clocky = eb.Application(
    name="clocky",
    deciders=[
        eb.Decider(
            category="account",
            initial_state=bank.Account(),
            decide=_clocky_decide,
            evolve=_clocky_evolve,
        )
    ],
    commands=[bank.OpenAccount, bank.Deposit, bank.Withdraw, bank.Transfer],
    events=[*bank.app.events, DepositStamped],
)
