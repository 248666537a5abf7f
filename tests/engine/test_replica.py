"""Replicas: read-mode state machines that execute the log and never handle commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

from engine_support import Env, fold_all, open_account

import eventbook as eb
from eventbook.engine.cutoffs import day_end_position
from eventbook.examples import bank
from eventbook.store.snapshots import DAY_END_KEY

DAY1, DAY2, DAY3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def _busy(engine: eb.Engine, rounds: int = 5) -> None:
    for name, money in (("a", 100), ("b", 50), ("c", 0)):
        open_account(engine, name, money)
    for i in range(rounds):
        engine.execute(bank.Transfer(from_account="a", to_account="b", amount=i + 1))
        engine.execute(bank.Transfer(from_account="b", to_account="c", amount=2 * i + 1))
        engine.execute(bank.Withdraw(account_id="c", amount=7))  # sometimes refused


def _days(env: Env, engine: eb.Engine) -> None:
    """Commands recorded on three business days."""
    for day in (DAY1, DAY2, DAY3):
        env.clock.set(datetime(day.year, day.month, day.day, 20, tzinfo=UTC))
        if day == DAY1:
            _busy(engine, 2)
        else:
            engine.execute(bank.Deposit(account_id="a", amount=day.day))
            engine.execute(bank.Transfer(from_account="a", to_account="c", amount=3))


@contextmanager
def following(replica: eb.Replica) -> Iterator[eb.Replica]:
    replica.start()
    try:
        yield replica
    finally:
        replica.stop()


def test_catch_up_reaches_the_hash_of_a_fresh_replay(env: Env) -> None:
    engine = env.engine(snapshot_every=3)
    replica = eb.Replica(bank.app, env.store)
    assert replica.position == 0 and replica.states == {}
    _busy(engine)
    assert replica.position == 0
    assert replica.catch_up() == env.store.head_position()
    fresh = engine.app_state(use_snapshots=False)
    assert replica.state_hash() == eb.state_hash(fresh.states) == fresh.state_hash()
    assert replica.states == fresh.states == fold_all(bank.app, env.log())
    assert replica.state("account-b") == engine.state("account-b").state
    assert replica.state("account-nobody") == bank.Account()
    # more events, another catch-up
    engine.execute(bank.Deposit(account_id="c", amount=9))
    assert replica.catch_up() == env.store.head_position()
    assert replica.state_hash() == engine.app_state(use_snapshots=False).state_hash()
    assert replica.catch_up() == env.store.head_position()  # nothing new: no change
    # the replica handed out a copy of its states
    replica.states.clear()
    assert replica.states == engine.app_state().states


def test_a_replica_made_later_starts_at_the_head_from_the_latest_cut_off(env: Env) -> None:
    engine = env.engine()
    _days(env, engine)
    made = eb.Replica(bank.app, env.store)
    assert made.position == env.store.head_position()
    assert made.state_hash() == engine.app_state(use_snapshots=False).state_hash()
    engine.day_end(DAY2)
    engine.execute(bank.Deposit(account_id="b", amount=3))
    for use_snapshots in (True, False):
        later = eb.Replica(bank.app, env.store, use_snapshots=use_snapshots)
        assert later.position == env.store.head_position()
        assert later.states == engine.app_state(use_snapshots=False).states
    assert made.catch_up() == env.store.head_position()
    assert made.state_hash() == later.state_hash()


def test_a_pinned_replica_stays_at_its_position(env: Env) -> None:
    engine = env.engine()
    _busy(engine, 2)
    pin = env.store.head_position() - 2
    replica = eb.Replica(bank.app, env.store, until=pin)
    assert replica.position == pin
    want = engine.app_state(eb.Target(at_position=pin), use_snapshots=False)
    assert replica.state_hash() == want.state_hash()
    assert engine.execute(bank.Deposit(account_id="a", amount=1)).accepted
    assert replica.catch_up() == pin
    assert replica.state_hash() == want.state_hash()
    # pinned ahead of the log: it goes as far as there is, then up to the pin
    ahead = eb.Replica(bank.app, env.store, until=env.store.head_position() + 1)
    assert ahead.position == env.store.head_position()
    engine.execute(bank.Deposit(account_id="a", amount=1))
    engine.execute(bank.Deposit(account_id="a", amount=1))
    assert ahead.catch_up() == env.store.head_position() - 1
    assert (
        ahead.state_hash() == engine.app_state(eb.Target(at_position=ahead.position)).state_hash()
    )


def test_a_replica_at_a_day_end(env: Env) -> None:
    engine = env.engine()
    _days(env, engine)
    for day in (DAY1, DAY2, DAY3, date(2026, 2, 1)):
        replica = eb.Replica.at_day_end(bank.app, env.store, day)
        assert replica.label == day.isoformat()
        assert replica.position == day_end_position(env.store, day, "UTC")
        cut = engine.day_end(day)
        assert replica.position == cut.position
        assert replica.state_hash() == cut.state_hash()
        assert replica.catch_up() == cut.position  # pinned
    # made from a saved cut-off, it is the same
    again = eb.Replica.at_day_end(bank.app, env.store, DAY2)
    assert again.state_hash() == engine.day_end(DAY2).state_hash()
    # without snapshots, too
    plain = eb.Replica(bank.app, env.store, until=again.position, use_snapshots=False)
    assert plain.state_hash() == again.state_hash()


def test_a_live_replica_follows_the_log(env: Env) -> None:
    engine = env.engine()
    replica = eb.Replica(bank.app, env.store)
    with following(replica):
        open_account(engine, "a", 10)
        out = engine.execute(bank.Withdraw(account_id="a", amount=4))
        assert replica.wait_for(out.position, timeout=10)
        assert replica.state("account-a").balance == 6
        for i in range(20):
            out = engine.execute(bank.Deposit(account_id="a", amount=i))
        refused = engine.execute(bank.Withdraw(account_id="a", amount=10**6))
        assert replica.wait_for(refused.position, timeout=10)
        assert replica.position == env.store.head_position()
        assert replica.state_hash() == engine.app_state(use_snapshots=False).state_hash()
        assert not replica.wait_for(env.store.head_position() + 1, timeout=0.05)
    # stopped: it no longer moves
    engine.execute(bank.Deposit(account_id="a", amount=1))
    position = replica.position
    assert position == env.store.head_position() - 1
    replica.stop()  # idempotent


def test_a_live_pinned_replica_stops_at_its_pin(env: Env) -> None:
    engine = env.engine()
    open_account(engine, "a", 1)
    replica = eb.Replica(bank.app, env.store, until=4)
    with following(replica):
        for _ in range(4):
            engine.execute(bank.Deposit(account_id="a", amount=1))
        assert replica.wait_for(4, timeout=10)
        assert not replica.wait_for(5, timeout=0.1)
        assert replica.position == 4 and replica.state("account-a").balance == 3


def test_a_replica_saves_day_ends_as_the_log_crosses_midnight(env: Env) -> None:
    engine = env.engine()
    replica = eb.Replica(bank.app, env.store, save_day_ends=True)
    _days(env, engine)
    replica.catch_up()
    snaps = list(env.store.snapshots().all(DAY_END_KEY))
    assert [s.label for s in snaps] == ["2026-03-01", "2026-03-02"]  # day 3 is not over
    for snap in snaps:
        day = date.fromisoformat(snap.label)
        assert snap.position == day_end_position(env.store, day, "UTC")
        want = engine.app_state(eb.Target(at_position=snap.position), use_snapshots=False)
        assert snap.state_hash == want.state_hash()
        assert snap.code_version == "account:1"
    # the cut-offs it saved serve the time machine
    mid = engine.app_state(eb.Target(at_position=snaps[1].position + 1))
    assert mid.snapshot == snaps[1]
    assert (
        mid.states
        == engine.app_state(
            eb.Target(at_position=snaps[1].position + 1), use_snapshots=False
        ).states
    )


def test_a_live_replica_saves_day_ends_while_following(env: Env) -> None:
    engine = env.engine()
    replica = eb.Replica(bank.app, env.store, save_day_ends=True)
    with following(replica):
        env.clock.set(datetime(2026, 3, 1, 23, 59, tzinfo=UTC))
        open_account(engine, "a", 5)
        assert replica.wait_for(env.store.head_position(), timeout=10)
        assert list(env.store.snapshots().all(DAY_END_KEY)) == []
        env.clock.advance(timedelta(minutes=2))  # past midnight
        out = engine.execute(bank.Deposit(account_id="a", amount=1))
        assert replica.wait_for(out.position, timeout=10)
    [snap] = env.store.snapshots().all(DAY_END_KEY)
    assert snap.label == "2026-03-01" and snap.position == out.position - 1
    assert snap.state_hash == engine.day_end(DAY1).state_hash()
    assert engine.day_end(DAY1).states["account-a"].balance == 5


def test_a_replica_reads_a_read_only_view(log_env: Env) -> None:
    engine = log_env.engine()
    _busy(engine, 2)
    reader = eb.open_store(str(log_env.path), readonly=True)
    try:
        replica = eb.Replica(bank.app, reader)
        assert replica.catch_up() == log_env.store.head_position()
        assert replica.state_hash() == engine.app_state().state_hash()
    finally:
        reader.close()


def test_a_replica_made_over_a_long_log_saves_the_midnights_it_has_not_saved(env: Env) -> None:
    """Started after the fact, a replica that saves day-ends starts from the latest cut-off
    and executes the rest, saving each midnight in it."""
    engine = env.engine()
    _days(env, engine)
    replica = eb.Replica(bank.app, env.store, save_day_ends=True)
    replica.catch_up()
    assert replica.state_hash() == engine.app_state(use_snapshots=False).state_hash()
    snaps = list(env.store.snapshots().all(DAY_END_KEY))
    assert [s.label for s in snaps] == ["2026-03-01", "2026-03-02"]
    for snap in snaps:
        assert snap.state_hash == engine.day_end(date.fromisoformat(snap.label)).state_hash()
    # from the latest saved cut-off on
    env.clock.set(datetime(2026, 3, 4, 9, tzinfo=UTC))
    engine.execute(bank.Deposit(account_id="a", amount=1))
    again = eb.Replica(bank.app, env.store, save_day_ends=True)
    again.catch_up()
    labels = [s.label for s in env.store.snapshots().all(DAY_END_KEY)]
    assert labels == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert again.state_hash() == engine.app_state(use_snapshots=False).state_hash()
