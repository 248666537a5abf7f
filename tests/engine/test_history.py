"""A stream's history as a passbook: every command tried on it, its events, the state after."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from engine_support import Env, fold

import eventbook as eb
from eventbook.examples import bank

A1, A2 = "account-a1", "account-a2"


def test_history_lists_every_command_in_position_order(env: Env) -> None:
    engine = env.engine()
    engine.execute(bank.OpenAccount(account_id="a1"), command_id="o-1")
    engine.execute(bank.OpenAccount(account_id="a2"), command_id="o-2")
    engine.execute(bank.Deposit(account_id="a1", amount=50), command_id="d-1")
    engine.execute(bank.Withdraw(account_id="a1", amount=80), command_id="w-1")  # refused
    engine.execute(bank.Deposit(account_id="a2", amount=5), command_id="d-2")
    t = engine.execute(
        bank.Transfer(from_account="a1", to_account="a2", amount=20), command_id="t-1"
    )
    engine.execute(bank.Transfer(from_account="a2", to_account="a1", amount=99), command_id="t-2")
    engine.execute(bank.Withdraw(account_id="a1", amount=10), command_id="w-2")

    entries = list(engine.history(A1))
    assert [e.command.get("id") for e in entries] == ["o-1", "d-1", "w-1", "t-1", "w-2"]
    assert [e.command.get("type") for e in entries] == [
        "OpenAccount",
        "Deposit",
        "Withdraw",
        "Transfer",
        "Withdraw",
    ]
    positions = [e.position for e in entries]
    assert positions == sorted(positions) == [1, 3, 4, 6, 9]
    assert [e.version for e in entries] == [1, 2, 2, 3, 4]
    assert [e.state.balance for e in entries] == [0, 50, 50, 30, 20]
    assert [[r.type for r in e.events] for e in entries] == [
        ["AccountOpened"],
        ["Deposited"],
        ["CommandRejected"],
        ["TransferSent"],
        ["Withdrawn"],
    ]
    refused = entries[2]
    assert refused.rejection == {
        "code": "insufficient_funds",
        "detail": "balance 50 is less than 80",
    }
    assert refused.command["data"] == {"account_id": "a1", "amount": 80}
    assert refused.events[0].stream == "$rejected-account-a1"
    assert all(e.rejection is None for i, e in enumerate(entries) if i != 2)
    transfer = entries[3]
    assert transfer.events == [t.events[0]]  # only this stream's side of the commit
    assert transfer.command["data"] == {"from_account": "a1", "to_account": "a2", "amount": 20}
    assert transfer.recorded_at == t.events[0].recorded_at
    assert entries[-1].state == engine.state(A1).state

    other = list(engine.history(A2))
    assert [e.command["id"] for e in other] == ["o-2", "d-2", "t-1", "t-2"]
    assert other[2].events == [t.events[1]] and other[2].state.balance == 25
    assert other[3].rejection is not None and other[3].rejection["code"] == "insufficient_funds"
    assert other[3].state.balance == 25


def test_history_state_after_each_entry_is_the_fold_up_to_it(env: Env) -> None:
    engine = env.engine(snapshot_every=2)
    engine.execute(bank.OpenAccount(account_id="a1"))
    for i in range(7):
        engine.execute(bank.Deposit(account_id="a1", amount=i + 1))
        engine.execute(bank.Withdraw(account_id="a1", amount=3 * i))
    records = env.stream(A1)
    for entry in engine.history(A1):
        assert entry.state == fold(bank.app, A1, records[: entry.version])
        assert entry.state == engine.state(A1, eb.Target(at_version=entry.version)).state


def test_events_not_from_commands_are_entries_of_their_own(env: Env) -> None:
    engine = env.engine()
    engine.execute(bank.OpenAccount(account_id="a1"))
    occurred = datetime(2026, 1, 2, tzinfo=UTC)
    env.store.append(
        [
            eb.NewEvent.of(A1, bank.Deposited(amount=3), occurred_at=occurred),
            eb.NewEvent.of(A1, bank.Deposited(amount=4)),
        ]
    )
    env.store.append([eb.NewEvent.of(A1, bank.Deposited(amount=5))], commit_id="import-1")
    env.store.append([eb.NewEvent.of(A1, bank.Deposited(amount=6))], commit_id="import-2")
    entries = list(engine.history(A1))
    assert [len(e.events) for e in entries] == [1, 1, 1, 1, 1]
    assert [e.command for e in entries[1:]] == [{}, {}, {}, {}]
    assert entries[1].occurred_at == occurred
    assert [e.state.balance for e in entries] == [0, 3, 7, 12, 18]


def test_a_multi_event_commit_on_one_stream_is_one_entry(env: Env) -> None:
    engine = env.engine()
    engine.execute(bank.OpenAccount(account_id="a1"))
    env.store.append(
        [eb.NewEvent.of(A1, bank.Deposited(amount=a)) for a in (1, 2, 3)], commit_id="batch"
    )
    entries = list(engine.history(A1))
    assert len(entries) == 2
    assert [r.data["amount"] for r in entries[1].events] == [1, 2, 3]
    assert entries[1].version == 4 and entries[1].position == 4
    assert entries[1].state.balance == 6


def test_history_of_nothing_and_of_no_category(env: Env) -> None:
    engine = env.engine()
    assert list(engine.history("account-nobody")) == []
    engine.execute(bank.Deposit(account_id="ghost", amount=1))  # refused: no such account
    [entry] = engine.history("account-ghost")
    assert entry.rejection is not None and entry.rejection["code"] == "no_such_account"
    assert entry.version == 0 and entry.state == bank.Account()
    with pytest.raises(eb.InvalidInput, match="in no category"):
        list(engine.history("ledger-1"))
