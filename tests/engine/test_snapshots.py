"""Snapshots: taken every N events, used when loading, ignored when made by other code."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import msgspec
import pytest
from engine_support import Env, balance, fold, open_account

import eventbook as eb
from eventbook.engine.codec import encode_state
from eventbook.examples import bank
from eventbook.store.snapshots import Snapshot

A1 = "account-a1"
A2 = "account-a2"


def deposits(engine: eb.Engine, account_id: str, count: int, amount: int = 1) -> None:
    for _ in range(count):
        assert engine.execute(bank.Deposit(account_id=account_id, amount=amount)).accepted


def test_a_snapshot_is_taken_each_time_a_stream_crosses_a_multiple(env: Env) -> None:
    engine = env.engine(snapshot_every=5)
    open_account(engine, "a1")
    deposits(engine, "a1", 3)
    assert list(env.store.snapshots().all(A1)) == []  # version 4
    deposits(engine, "a1", 1)
    [first] = env.store.snapshots().all(A1)  # version 5
    deposits(engine, "a1", 8)  # version 13
    snaps = list(env.store.snapshots().all(A1))
    assert [s.version for s in snaps] == [5, 10]

    records = env.stream(A1)
    for snap in snaps:
        at = records[snap.version - 1]
        state = fold(bank.app, A1, records[: snap.version])
        assert snap.key == A1 and snap.position == at.position
        assert snap.recorded_at == at.recorded_at
        assert snap.max_occurred_at == at.occurred_at
        assert snap.code_version == "1" and snap.schema_version == 1
        assert snap.state == encode_state(state)
        assert msgspec.msgpack.decode(snap.state, type=bank.Account) == state
        assert snap.state_hash == eb.state_hash({A1: state})
        assert snap.label == "" and snap.taken_at is not None
    assert first == snaps[0]
    # rejections change no state and take no snapshot
    for _ in range(6):
        engine.execute(bank.Withdraw(account_id="a1", amount=10**6))
    assert [s.version for s in env.store.snapshots().all(A1)] == [5, 10]
    assert list(env.store.snapshots().all("$rejected-account-a1")) == []


def test_a_transfer_snapshots_each_stream_that_crossed(env: Env) -> None:
    engine = env.engine(snapshot_every=3)
    open_account(engine, "a1", 10)  # a1 at version 2
    open_account(engine, "a2")  # a2 at version 1
    engine.execute(bank.Deposit(account_id="a2", amount=1))  # a2 at 2
    engine.execute(bank.Transfer(from_account="a1", to_account="a2", amount=4))  # both at 3
    assert [s.version for s in env.store.snapshots().all(A1)] == [3]
    assert [s.version for s in env.store.snapshots().all(A2)] == [3]
    [snap] = env.store.snapshots().all(A2)
    assert msgspec.msgpack.decode(snap.state, type=bank.Account).balance == 5


def test_a_commit_crossing_two_multiples_saves_the_state_after_it(env: Env) -> None:
    class Batch(eb.Command, tag="Batch"):
        count: int

        def streams(self) -> tuple[str, ...]:
            return ("tally-t",)

    class Counted(eb.Event, tag="Counted"):
        n: int

    app = eb.Application(
        name="tally",
        deciders=[
            eb.Decider(
                "tally",
                0,
                lambda c, s, ctx: [Counted(n=i) for i in range(c.count)],
                lambda s, e: s + 1,
            )
        ],
        commands=[Batch],
        events=[Counted],
        snapshot_every=2,
    )
    engine = env.engine(app)
    engine.execute(Batch(count=5))  # versions 1..5 cross 2 and 4 in one commit
    snaps = list(env.store.snapshots().all("tally-t"))
    assert [(s.version, msgspec.msgpack.decode(s.state)) for s in snaps] == [(5, 5)]
    assert engine.state("tally-t").snapshot == snaps[0]


def test_loading_starts_from_the_latest_snapshot(env: Env) -> None:
    engine = env.engine(snapshot_every=5)
    open_account(engine, "a1")
    deposits(engine, "a1", 11)  # version 12
    loaded = engine.state(A1)
    assert loaded.snapshot is not None and loaded.snapshot.version == 10
    assert loaded.folded == 2 < 5
    assert loaded.version == 12 and loaded.position == env.store.head_position()
    replayed = engine.state(A1, use_snapshots=False)
    assert replayed.snapshot is None and replayed.folded == 12
    assert loaded.state == replayed.state == fold(bank.app, A1, env.stream(A1))
    assert (loaded.version, loaded.position, loaded.recorded_at, loaded.max_occurred_at) == (
        replayed.version,
        replayed.position,
        replayed.recorded_at,
        replayed.max_occurred_at,
    )
    # exactly at a snapshot: nothing left to fold
    for _ in range(3):
        engine.execute(bank.Withdraw(account_id="a1", amount=1))
    exact = engine.state(A1)
    assert exact.snapshot is not None and exact.snapshot.version == 15 and exact.folded == 0
    assert exact.state == engine.state(A1, use_snapshots=False).state


def test_the_snapshot_really_is_what_loading_reads(env: Env) -> None:
    """A planted snapshot with a different balance shows through: the fold starts from it."""
    engine = env.engine(snapshot_every=0)
    open_account(engine, "a1")
    deposits(engine, "a1", 3)  # version 4, balance 3
    rec = env.stream(A1)[-1]
    planted = bank.Account("a1", True, 1000, 3)
    env.store.snapshots().save(
        Snapshot(
            key=A1,
            version=4,
            position=rec.position,
            recorded_at=rec.recorded_at,
            max_occurred_at=rec.occurred_at,
            code_version="1",
            schema_version=1,
            state=encode_state(planted),
            state_hash=eb.state_hash({A1: planted}),
        )
    )
    deposits(engine, "a1", 1)
    assert engine.state(A1).state.balance == 1001
    assert engine.state(A1, use_snapshots=False).state.balance == 4


def test_no_snapshots_when_snapshot_every_is_zero(env: Env) -> None:
    engine = env.engine(snapshot_every=0)
    open_account(engine, "a1")
    deposits(engine, "a1", 30)
    assert list(env.store.snapshots().all()) == []
    assert engine.state(A1).snapshot is None
    assert balance(engine, "a1") == 30


def test_a_manual_snapshot(env: Env) -> None:
    engine = env.engine(snapshot_every=0)
    open_account(engine, "a1")
    deposits(engine, "a1", 6)
    saved = engine.snapshot(A1)
    [snap] = env.store.snapshots().all(A1)
    assert snap.version == saved.version == 7
    loaded = engine.state(A1)
    assert loaded.snapshot == snap and loaded.folded == 0 and loaded.state.balance == 6


def test_a_snapshot_of_another_decider_version_is_ignored(env: Env) -> None:
    engine = env.engine(snapshot_every=5)
    open_account(engine, "a1")
    deposits(engine, "a1", 11)
    assert [s.code_version for s in env.store.snapshots().all(A1)] == ["1", "1"]

    accounts_v2 = dataclasses.replace(bank.accounts, version="2")
    app_v2 = dataclasses.replace(bank.app, deciders=[accounts_v2], snapshot_every=5)
    engine_v2 = env.engine(app_v2)
    loaded = engine_v2.state(A1)
    assert loaded.snapshot is None and loaded.folded == 12
    assert loaded.state == engine.state(A1).state
    # the new code takes its own snapshots, and each version reads only its own
    deposits(engine_v2, "a1", 3)  # version 15
    assert [(s.code_version, s.version) for s in env.store.snapshots().all(A1)] == [
        ("1", 5),
        ("1", 10),
        ("2", 15),
    ]
    assert engine_v2.state(A1).snapshot.version == 15  # type: ignore[union-attr]
    old = env.engine(snapshot_every=5).state(A1)
    assert old.snapshot is not None and old.snapshot.version == 10 and old.folded == 5
    assert old.state == engine_v2.state(A1).state


def test_states_with_and_without_snapshots_agree(env: Env) -> None:
    engine = env.engine(snapshot_every=4)
    names = ["a", "b", "c"]
    for name in names:
        open_account(engine, name, 50)
    for i in range(40):
        src, dst = names[i % 3], names[(i + 1) % 3]
        engine.execute(bank.Transfer(from_account=src, to_account=dst, amount=(i * 7) % 30 + 1))
        engine.execute(bank.Withdraw(account_id=src, amount=(i * 5) % 20 + 1))
    for name in names:
        stream = f"account-{name}"
        with_snaps = engine.state(stream)
        assert with_snaps.snapshot is not None and with_snaps.folded < 4
        assert with_snaps.state == engine.state(stream, use_snapshots=False).state
        assert with_snaps.state == fold(bank.app, stream, env.stream(stream))
    assert engine.app_state().states == engine.app_state(use_snapshots=False).states


def test_snapshots_persist_across_reopening_the_log(log_env: Env) -> None:
    engine = log_env.engine(snapshot_every=5)
    open_account(engine, "a1")
    deposits(engine, "a1", 11)
    before = list(log_env.store.snapshots().all(A1))
    log_env.reopen()
    assert list(log_env.store.snapshots().all(A1)) == before
    engine = log_env.engine(snapshot_every=5)
    loaded = engine.state(A1)
    assert loaded.snapshot == before[-1] and loaded.folded == 2
    assert loaded.state.balance == 11
    deposits(engine, "a1", 3)  # version 15: the reopened engine goes on taking them
    assert [s.version for s in log_env.store.snapshots().all(A1)] == [5, 10, 15]


def test_a_read_only_store_reads_snapshots(log_env: Env) -> None:
    engine = log_env.engine(snapshot_every=5)
    open_account(engine, "a1")
    deposits(engine, "a1", 6)
    reader = eb.open_store(str(log_env.path), readonly=True)
    try:
        loaded = eb.Engine(bank.app, reader).state(A1)
        assert loaded.snapshot is not None and loaded.snapshot.version == 5
        assert loaded.state.balance == 6
        with pytest.raises(eb.StoreReadOnly):
            reader.snapshots().save(loaded.snapshot)
    finally:
        reader.close()


def test_a_manual_snapshot_at_a_target(env: Env) -> None:
    engine = env.engine(snapshot_every=0)
    open_account(engine, "a1")
    deposits(engine, "a1", 6)  # version 7
    records = env.stream(A1)
    by_version = engine.snapshot(A1, eb.Target(at_version=3))
    by_position = engine.snapshot(A1, eb.Target(at_position=records[4].position))
    by_time = engine.snapshot(A1, eb.Target(as_of=records[5].recorded_at))
    assert (by_version.version, by_position.version, by_time.version) == (3, 5, 6)
    assert [s.version for s in env.store.snapshots().all(A1)] == [3, 5, 6]
    loaded = engine.state(A1)
    assert loaded.snapshot is not None and loaded.snapshot.version == 6 and loaded.folded == 1
    assert loaded.state == engine.state(A1, use_snapshots=False).state
    assert engine.state(A1, eb.Target(at_version=4)).snapshot.version == 3  # type: ignore[union-attr]


def test_no_snapshot_of_a_state_as_it_really_was(env: Env) -> None:
    """The state "as it really was" at T leaves out late events, so it is no state at any
    version: saved as a snapshot it would hide those events from every later load."""
    engine = env.engine(snapshot_every=0)
    engine.execute(bank.OpenAccount(account_id="a1"), occurred_at=datetime(2026, 1, 1, tzinfo=UTC))
    engine.execute(
        bank.Deposit(account_id="a1", amount=1), occurred_at=datetime(2026, 1, 5, tzinfo=UTC)
    )
    engine.execute(
        bank.Deposit(account_id="a1", amount=2), occurred_at=datetime(2026, 1, 2, tzinfo=UTC)
    )
    with pytest.raises(eb.InvalidInput, match="not occurred_by"):
        engine.snapshot(A1, eb.Target(occurred_by=datetime(2026, 1, 3, tzinfo=UTC)))
    assert list(env.store.snapshots().all(A1)) == []
    assert balance(engine, "a1") == 3
