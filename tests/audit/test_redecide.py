"""Verification by re-decision: every recorded command decided again yields what was recorded;
a decider that reads the clock, and a commit written around the engine, are named."""

from __future__ import annotations

import pytest
from audit_support import Clock, bank_history, clocky

import eventbook as eb
from eventbook.audit import verify_redecide
from eventbook.examples import bank


def test_a_bank_history_decides_again_exactly(any_store: eb.EventStore, clock: Clock) -> None:
    engine = eb.Engine(bank.app, any_store, clock=clock)
    bank_history(engine, 120)
    any_store.append([eb.NewEvent("account-a0", "Deposited", {"amount": 3})])  # not a command
    engine.run("Withdraw", {"account_id": "a0", "amount": 1})  # decided on the appended state
    report = verify_redecide(bank.app, any_store)
    assert report.ok, report.mismatches
    assert report.commands == 121 and report.matched == 121 and report.unchecked == 1
    assert report.rejections > 0  # rejections are decided again too
    assert report.position == any_store.head_position()


def test_a_decider_that_reads_the_clock_is_named(any_store: eb.EventStore, clock: Clock) -> None:
    engine = eb.Engine(clocky, any_store, clock=clock)
    engine.run("OpenAccount", {"account_id": "a"})
    engine.run("Withdraw", {"account_id": "a", "amount": 5})  # rejected, deterministically
    engine.run("Deposit", {"account_id": "a", "amount": 5}, command_id="dep-1")
    engine.run("Deposit", {"account_id": "a", "amount": 6})
    report = verify_redecide(clocky, any_store)
    assert not report.ok and report.mismatch_count == 2 and report.matched == 2
    first = report.first
    assert first is not None
    assert (first.position, first.command_id, first.command_type) == (3, "dep-1", "Deposit")
    assert first.commit_id == "cmd:dep-1"
    assert "event 1 of the commit" in first.what and "DepositStamped" in first.what


def test_a_forged_commit_is_caught(store: eb.EventStore, clock: Clock) -> None:
    engine = eb.Engine(bank.app, store, clock=clock)
    engine.run("OpenAccount", {"account_id": "a"})
    ok = engine.run("Deposit", {"account_id": "a", "amount": 5}, command_id="d1")
    meta = ok.events[0].metadata
    store.append(  # the command of d1 again, with ten times the money
        [eb.NewEvent("account-a", "Deposited", {"amount": 50}, metadata=meta)],
        commit_id="cmd:forged",
    )
    report = verify_redecide(bank.app, store)
    assert report.mismatch_count == 1
    assert report.first is not None and report.first.position == 3
    assert '"amount":50' in report.first.what and '"amount":5}' in report.first.what


def test_an_accepted_command_recorded_as_rejected_is_caught(
    store: eb.EventStore, clock: Clock
) -> None:
    engine = eb.Engine(bank.app, store, clock=clock)
    engine.run("OpenAccount", {"account_id": "a"})
    engine.run("Deposit", {"account_id": "a", "amount": 5})
    rejected = engine.run("Withdraw", {"account_id": "a", "amount": 50}, command_id="w")
    ok = engine.run("Withdraw", {"account_id": "a", "amount": 1}, command_id="w2")
    forged = dict(rejected.events[0].metadata)
    forged["command"] = ok.events[0].metadata["command"] | {"id": "w3"}
    store.append(
        [eb.NewEvent(rejected.events[0].stream, "CommandRejected", rejected.events[0].data, forged)]
    )
    report = verify_redecide(bank.app, store)
    assert report.mismatch_count == 1
    assert report.first is not None
    assert "recorded: rejected insufficient_funds; decided again: accepted" in report.first.what


def test_a_decider_that_raises_on_recorded_input_is_named(
    store: eb.EventStore, clock: Clock
) -> None:
    engine = eb.Engine(bank.app, store, clock=clock)
    engine.run("OpenAccount", {"account_id": "a"}, command_id="o")

    def broken(command: object, state: object, ctx: eb.Context) -> eb.Decision:
        raise RuntimeError("boom")

    decider = eb.Decider("account", bank.Account(), broken, bank.evolve)
    app = eb.Application("broken", [decider], bank.app.commands, bank.app.events)
    report = verify_redecide(app, store)
    assert report.first is not None and report.first.command_id == "o"
    assert "decide raised RuntimeError: boom" in report.first.what


def test_mismatches_are_bounded(store: eb.EventStore, clock: Clock) -> None:
    engine = eb.Engine(clocky, store, clock=clock)
    engine.run("OpenAccount", {"account_id": "a"})
    for _ in range(105):
        engine.run("Deposit", {"account_id": "a", "amount": 1})
    report = verify_redecide(clocky, store)
    assert report.mismatch_count == 105 and len(report.mismatches) == 100


@pytest.mark.parametrize("snapshot_every", [0, 3])
def test_redecide_ignores_snapshots(
    store: eb.EventStore, clock: Clock, snapshot_every: int
) -> None:
    import dataclasses

    app = dataclasses.replace(bank.app, snapshot_every=snapshot_every)
    bank_history(eb.Engine(app, store, clock=clock), 30, seed=3)
    assert verify_redecide(app, store).ok
