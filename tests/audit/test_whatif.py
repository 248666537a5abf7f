"""Fixing the past by appending (seed 000): interest computed by a wrong rule is recomputed by
the fixed one, the difference is shown per stream and booked as compensating events, and
replaying old + compensation gives the corrected state."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from audit_support import Clock

import eventbook as eb
from eventbook.audit import book_corrections, verify_redecide, what_if
from eventbook.examples import bank_interest
from eventbook.examples.bank_interest import app, fixed_app

ANN = {"actor": "ann"}


def history(store: eb.EventStore, clock: Clock) -> eb.Engine:
    engine = eb.Engine(app, store, clock=clock)
    for a in ("a", "b", "c"):
        engine.run("OpenAccount", {"account_id": a}, metadata=ANN)
    engine.run("Deposit", {"account_id": "a", "amount": 100_000}, metadata=ANN)
    engine.run("Deposit", {"account_id": "b", "amount": 1_000}, metadata=ANN)
    engine.run("Deposit", {"account_id": "c", "amount": 50}, metadata=ANN)
    for a in ("a", "b", "c"):  # b's wrong interest is 1; c's is 0 either way (rejected)
        engine.run("PayInterest", {"account_id": a}, command_id=f"i1-{a}", metadata=ANN)
    engine.run("Withdraw", {"account_id": "a", "amount": 100}, metadata=ANN)
    for a in ("a", "b"):
        engine.run("PayInterest", {"account_id": a}, command_id=f"i2-{a}", metadata=ANN)
    return engine


def test_what_if_shows_each_stream_that_differs(store: eb.EventStore, clock: Clock) -> None:
    history(store, clock)
    report = what_if(fixed_app, store)
    assert [d.stream for d in report.differences] == ["account-a", "account-b"]
    a, b = report.differences
    # wrong: 100,000 -> +150 -> -100 -> +150; fixed: +1,500 -> -100 -> +1,521
    assert (a.before.balance, a.after.balance) == (100_200, 102_921)
    assert (a.before.interest, a.after.interest) == (300, 3_021)
    assert a.corrects == ["cmd:i1-a", "cmd:i2-a"] and a.version == 5
    assert (b.before.balance, b.after.balance) == (1_002, 1_015 + 15)
    assert report.changed == 4 and report.commands == 12
    assert store.head_position() == 12  # what-if alone writes nothing


def test_booking_makes_old_plus_compensation_equal_the_corrected_history(
    any_store: eb.EventStore, clock: Clock
) -> None:
    engine = history(any_store, clock)
    report = what_if(fixed_app, any_store)
    head = any_store.head_position()
    booked = book_corrections(fixed_app, any_store, report, metadata={**ANN, "reason": "fix"})
    assert [b.stream for b in booked] == ["account-a", "account-b"]
    for difference in report.differences:
        replayed = eb.Engine(app, any_store).state(difference.stream, use_snapshots=False)
        assert replayed.state == difference.after  # old + compensation = corrected
    [rec] = list(any_store.read_all(after=head, limit=1))
    assert rec.type == "InterestCorrected" and rec.data == {"amount": 2_721}
    assert rec.metadata["correction"]["corrects"] == ["cmd:i1-a", "cmd:i2-a"]
    assert rec.metadata["actor"] == "ann" and rec.metadata["reason"] == "fix"
    assert what_if(fixed_app, any_store).differences == []  # nothing left to correct
    assert verify_redecide(app, any_store).ok  # the recorded history still re-decides
    engine.run("PayInterest", {"account_id": "a"}, metadata=ANN)  # on the corrected balance
    assert verify_redecide(app, any_store).ok


def test_from_a_position_only_later_commands_are_decided_again(
    store: eb.EventStore, clock: Clock
) -> None:
    history(store, clock)
    first_runs = max(r.position for r in store.read_all() if r.commit_id == "cmd:i1-c")
    report = what_if(fixed_app, store, after=first_runs)
    [a, _b] = report.differences
    assert a.corrects == ["cmd:i2-a"] and (a.before.balance, a.after.balance) == (100_200, 101_550)
    assert report.commands == 3


def test_booking_needs_the_actor_the_application_requires(
    store: eb.EventStore, clock: Clock
) -> None:
    history(store, clock)
    head = store.head_position()
    with pytest.raises(eb.InvalidInput, match="requires actor"):
        book_corrections(fixed_app, store, what_if(fixed_app, store))
    assert store.head_position() == head


def test_a_correction_that_misses_the_corrected_state_is_refused(
    store: eb.EventStore, clock: Clock
) -> None:
    history(store, clock)
    [decider] = fixed_app.deciders
    half = dataclasses.replace(
        decider,
        correct=lambda before, after: [
            bank_interest.InterestCorrected(amount=(after.balance - before.balance) // 2)
        ],
    )
    wrong = dataclasses.replace(fixed_app, deciders=[half])
    head = store.head_position()
    with pytest.raises(eb.InvalidInput, match="does not reach the corrected state"):
        book_corrections(wrong, store, what_if(wrong, store), metadata=ANN)
    nothing = dataclasses.replace(fixed_app, deciders=[dataclasses.replace(decider, correct=None)])
    with pytest.raises(eb.InvalidInput, match="has no correct"):
        book_corrections(nothing, store, what_if(nothing, store), metadata=ANN)
    assert store.head_position() == head


def test_a_concurrent_change_is_a_conflict_and_books_nothing_for_that_stream(
    store: eb.EventStore, clock: Clock
) -> None:
    engine = history(store, clock)
    report = what_if(fixed_app, store)
    engine.run("Deposit", {"account_id": "a", "amount": 1}, metadata=ANN)
    with pytest.raises(eb.WrongExpectedVersion):
        book_corrections(fixed_app, store, report, metadata=ANN)
    assert msgspec.to_builtins(what_if(fixed_app, store).differences[0].stream) == "account-a"


def test_the_same_app_finds_no_difference(store: eb.EventStore, clock: Clock) -> None:
    history(store, clock)
    report = what_if(app, store)
    assert report.differences == [] and report.changed == 0


def test_a_bad_position_is_refused(store: eb.EventStore) -> None:
    with pytest.raises(eb.InvalidInput, match="position >= 0"):
        what_if(fixed_app, store, after=-1)
