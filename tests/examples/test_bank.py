"""The bank example (seed 001): accounts, overdrafts refused, transfers in one commit, and the
passbook of an account, on the memory store and on the embedded log."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

import eventbook as eb
from eventbook.examples import bank
from eventbook.examples.bank import Deposit, OpenAccount, Transfer, Withdraw


@pytest.fixture(params=["memory", "log"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[eb.EventStore]:
    url = "memory://" if request.param == "memory" else str(tmp_path / "bank")
    opened = eb.open_store(url)
    yield opened
    opened.close()


@pytest.fixture
def engine(store: eb.EventStore) -> eb.Engine:
    return eb.Engine(bank.app, store)


def balance(engine: eb.Engine, account_id: str) -> int:
    return engine.state(f"account-{account_id}").state.balance


def ok(engine: eb.Engine, command: eb.Command) -> eb.Outcome:
    outcome = engine.execute(command)
    assert outcome.accepted, outcome.rejection
    return outcome


def rejected(engine: eb.Engine, command: eb.Command) -> str:
    before = engine.store.head_position()
    state_before = engine.app_state(use_snapshots=False).state_hash()
    outcome = engine.execute(command)
    assert not outcome.accepted and outcome.rejection is not None
    assert [(e.type, e.position) for e in outcome.events] == [("CommandRejected", before + 1)]
    assert engine.app_state(use_snapshots=False).state_hash() == state_before
    return outcome.rejection.code


def test_deposits_and_withdrawals_move_the_balance(engine: eb.Engine) -> None:
    ok(engine, OpenAccount(account_id="a1"))
    ok(engine, Deposit(account_id="a1", amount=500))
    ok(engine, Withdraw(account_id="a1", amount=200))
    ok(engine, Withdraw(account_id="a1", amount=300))  # down to exactly zero
    folded = engine.state("account-a1")
    assert folded.state == bank.Account("a1", True, 0, 3)
    assert folded.version == 4


def test_an_overdraft_is_refused_with_insufficient_funds(engine: eb.Engine) -> None:
    ok(engine, OpenAccount(account_id="a1"))
    ok(engine, Deposit(account_id="a1", amount=100))

    outcome = engine.execute(Withdraw(account_id="a1", amount=101))

    assert not outcome.accepted
    assert outcome.rejection is not None
    assert outcome.rejection.code == "insufficient_funds"
    assert "100" in outcome.rejection.detail
    [nop] = outcome.events
    assert (nop.stream, nop.type) == ("$rejected-account-a1", "CommandRejected")
    assert nop.data["code"] == "insufficient_funds"
    assert nop.data["data"] == {"account_id": "a1", "amount": 101}
    assert balance(engine, "a1") == 100
    assert engine.state("account-a1").version == 2  # the account stream is untouched


def test_rejection_codes(engine: eb.Engine) -> None:
    assert rejected(engine, Deposit(account_id="a1", amount=1)) == "no_such_account"
    assert rejected(engine, Withdraw(account_id="a1", amount=1)) == "no_such_account"
    ok(engine, OpenAccount(account_id="a1"))
    assert rejected(engine, OpenAccount(account_id="a1")) == "account_exists"
    assert rejected(engine, Transfer(from_account="a1", to_account="zz", amount=1)) == (
        "no_such_account"
    )
    assert rejected(engine, Transfer(from_account="zz", to_account="a1", amount=1)) == (
        "no_such_account"
    )
    assert rejected(engine, Transfer(from_account="a1", to_account="a1", amount=1)) == (
        "same_account"
    )
    ok(engine, OpenAccount(account_id="a2"))
    assert rejected(engine, Transfer(from_account="a1", to_account="a2", amount=1)) == (
        "insufficient_funds"
    )


def test_a_transfer_is_two_events_in_two_streams_in_one_commit(engine: eb.Engine) -> None:
    ok(engine, OpenAccount(account_id="a1"))
    ok(engine, OpenAccount(account_id="a2"))
    ok(engine, Deposit(account_id="a1", amount=100))

    outcome = engine.execute(
        Transfer(from_account="a1", to_account="a2", amount=30), command_id="t1"
    )

    assert outcome.accepted
    sent, received = outcome.events
    assert (sent.stream, sent.type, sent.data) == (
        "account-a1",
        "TransferSent",
        {"to_account": "a2", "amount": 30},
    )
    assert (received.stream, received.type, received.data) == (
        "account-a2",
        "TransferReceived",
        {"from_account": "a1", "amount": 30},
    )
    assert sent.commit_id == received.commit_id is not None
    assert received.position == sent.position + 1
    # what the store holds is the same commit
    stored = engine.store.read_commit(sent.commit_id)
    assert [(e.stream, e.type, e.position) for e in stored] == [
        (e.stream, e.type, e.position) for e in outcome.events
    ]
    assert [e.stream for e in engine.store.read_all(after=sent.position - 1)] == [
        "account-a1",
        "account-a2",
    ]
    assert (balance(engine, "a1"), balance(engine, "a2")) == (70, 30)
    # each event carries the command that caused it
    assert (
        sent.metadata["command"]
        == received.metadata["command"]
        == {
            "type": "Transfer",
            "id": "t1",
            "data": {"from_account": "a1", "to_account": "a2", "amount": 30},
        }
    )
    # retried with the same command id, nothing more is written
    again = engine.execute(Transfer(from_account="a1", to_account="a2", amount=30), command_id="t1")
    assert again.accepted and again.duplicate
    assert (balance(engine, "a1"), balance(engine, "a2")) == (70, 30)


def test_the_passbook_lists_every_command_with_the_balance_after(engine: eb.Engine) -> None:
    ok(engine, OpenAccount(account_id="a1"))
    ok(engine, OpenAccount(account_id="a2"))
    ok(engine, Deposit(account_id="a1", amount=100))
    ok(engine, Transfer(from_account="a1", to_account="a2", amount=30))
    engine.execute(Withdraw(account_id="a1", amount=500))  # refused
    ok(engine, Transfer(from_account="a2", to_account="a1", amount=5))
    ok(engine, Withdraw(account_id="a1", amount=75))

    passbook = [
        (
            e.command["type"],
            [r.type for r in e.events],
            e.rejection["code"] if e.rejection else None,
            e.state.balance,
            e.version,
        )
        for e in engine.history("account-a1")
    ]

    assert passbook == [
        ("OpenAccount", ["AccountOpened"], None, 0, 1),
        ("Deposit", ["Deposited"], None, 100, 2),
        ("Transfer", ["TransferSent"], None, 70, 3),
        ("Withdraw", ["CommandRejected"], "insufficient_funds", 70, 3),
        ("Transfer", ["TransferReceived"], None, 75, 4),
        ("Withdraw", ["Withdrawn"], None, 0, 5),
    ]
    positions = [e.position for e in engine.history("account-a1")]
    assert positions == sorted(positions)
    [received] = [e for e in engine.history("account-a2") if e.command["type"] == "Transfer"][:1]
    assert received.state.balance == 30


def test_amounts_are_positive_integers(engine: eb.Engine) -> None:
    ok(engine, OpenAccount(account_id="a1"))
    for data in ({"account_id": "a1", "amount": 0}, {"account_id": "a1", "amount": 1.5}):
        with pytest.raises(eb.InvalidInput):
            engine.run("Deposit", data)
    assert engine.run("Deposit", '{"account_id": "a1", "amount": 7}').accepted
    assert balance(engine, "a1") == 7


def test_snapshots_do_not_change_the_state(store: eb.EventStore) -> None:
    app = dataclasses.replace(bank.app, snapshot_every=3)
    engine = eb.Engine(app, store)
    ok(engine, OpenAccount(account_id="a1"))
    for amount in range(1, 11):
        ok(engine, Deposit(account_id="a1", amount=amount))
    with_snapshots = engine.state("account-a1")
    assert with_snapshots.snapshot is not None
    assert with_snapshots.state == engine.state("account-a1", use_snapshots=False).state
    assert with_snapshots.state.balance == 55
    # a fresh engine (empty cache) loads from the latest snapshot and the tail
    fresh = eb.Engine(app, store)
    ok(fresh, Withdraw(account_id="a1", amount=55))
    assert balance(fresh, "a1") == 0
