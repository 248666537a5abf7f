"""The time machine: a stream or the whole application at a version, a position, a recorded
time or an occurred time; and day-end cut-offs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from engine_support import Env, fold, fold_all, open_account

import eventbook as eb
from eventbook.engine.cutoffs import day_end_position
from eventbook.examples import bank
from eventbook.store.snapshots import DAY_END_KEY

A1 = "account-a1"
US = timedelta(microseconds=1)


def _powers(engine: eb.Engine, count: int, **kwargs: object) -> None:
    """Deposits of 1, 2, 4, ...: a balance names exactly the deposits folded into it."""
    for i in range(count):
        assert engine.execute(bank.Deposit(account_id="a1", amount=2**i), **kwargs).accepted


@pytest.mark.parametrize("snapshot_every", [0, 3])
def test_at_version_equals_folding_the_first_events(env: Env, snapshot_every: int) -> None:
    engine = env.engine(snapshot_every=snapshot_every)
    open_account(engine, "a1")
    _powers(engine, 10)  # version 11
    records = env.stream(A1)
    for n in range(len(records) + 3):
        for use_snapshots in (True, False):
            got = engine.state(A1, eb.Target(at_version=n), use_snapshots=use_snapshots)
            assert got.state == fold(bank.app, A1, records[:n]), (n, use_snapshots)
            assert got.version == min(n, len(records))
            assert got.position == (records[min(n, len(records)) - 1].position if n else 0)
            if got.snapshot is not None:
                assert use_snapshots and got.snapshot.version <= n
                assert got.folded == got.version - got.snapshot.version
    if snapshot_every:
        assert engine.state(A1, eb.Target(at_version=8)).snapshot.version == 6  # type: ignore[union-attr]


def test_at_version_zero_is_the_initial_state(env: Env) -> None:
    engine = env.engine(snapshot_every=1)
    open_account(engine, "a1", 5)
    zero = engine.state(A1, eb.Target(at_version=0))
    assert zero.state == bank.Account() and zero.version == 0 and zero.position == 0
    assert zero.snapshot is None and zero.folded == 0
    assert engine.state(A1, eb.Target(at_position=0)).state == bank.Account()
    assert engine.app_state(eb.Target(at_position=0)).states == {}
    # a stream never written is at its initial state at any target
    assert engine.state("account-nobody").state == bank.Account()
    assert engine.state("account-nobody", eb.Target(at_version=3)).version == 0


@pytest.mark.parametrize("snapshot_every", [0, 2])
def test_at_position_across_interleaved_streams(env: Env, snapshot_every: int) -> None:
    engine = env.engine(snapshot_every=snapshot_every)
    open_account(engine, "a1", 10)
    open_account(engine, "a2", 20)
    for i in range(6):
        engine.execute(bank.Transfer(from_account="a1", to_account="a2", amount=i + 1))
        engine.execute(bank.Withdraw(account_id="a2", amount=3 * i + 50))  # some are refused
        engine.execute(bank.Deposit(account_id="a1", amount=i + 2))
    log = env.log()
    assert any(r.stream.startswith("$rejected-") for r in log)
    for p in range(len(log) + 2):
        upto = log[:p]
        for stream in (A1, "account-a2"):
            mine = [r for r in upto if r.stream == stream]
            got = engine.state(stream, eb.Target(at_position=p))
            assert got.state == fold(bank.app, stream, mine), (stream, p)
            assert got.version == len(mine)
            assert got.position == (mine[-1].position if mine else 0)
            assert (
                got.state
                == engine.state(stream, eb.Target(at_position=p), use_snapshots=False).state
            )
        whole = engine.app_state(eb.Target(at_position=p))
        assert whole.states == fold_all(bank.app, upto)
        assert whole.position == min(p, len(log))
        assert whole.state_hash() == eb.state_hash(fold_all(bank.app, upto))


@pytest.mark.parametrize("snapshot_every", [0, 2])
def test_as_of_a_recorded_time(env: Env, snapshot_every: int) -> None:
    engine = env.engine(snapshot_every=snapshot_every)
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    env.clock.set(t0)
    open_account(engine, "a1")
    for i in range(8):
        env.clock.set(t0 + timedelta(minutes=i + 1))
        engine.execute(bank.Deposit(account_id="a1", amount=2**i))
    records = env.stream(A1)
    times = [r.recorded_at for r in records]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[3] == t0 + timedelta(minutes=3, milliseconds=1)  # the store read the clock
    probes = [times[0] - US, *times, *(t - US for t in times[1:]), times[-1] + timedelta(days=1)]
    for t in probes:
        want = [r for r in records if r.recorded_at <= t]
        got = engine.state(A1, eb.Target(as_of=t))
        assert got.state == fold(bank.app, A1, want), t
        assert got.version == len(want)
        if got.snapshot is not None:
            assert got.snapshot.recorded_at is not None and got.snapshot.recorded_at <= t
        assert engine.app_state(eb.Target(as_of=t)).states == fold_all(
            bank.app, [r for r in env.log() if r.recorded_at <= t]
        )
    if snapshot_every:
        assert engine.state(A1, eb.Target(as_of=times[5])).snapshot is not None
    # an as_of in another time zone is the same instant
    shanghai = times[4].astimezone(timezone(timedelta(hours=8)))
    assert engine.state(A1, eb.Target(as_of=shanghai)).version == 5


def test_recorded_times_never_decrease_when_the_clock_goes_back(env: Env) -> None:
    engine = env.engine()
    env.clock.set(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    open_account(engine, "a1")
    env.clock.set(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))  # someone set the clock back
    engine.execute(bank.Deposit(account_id="a1", amount=1))
    first, second = env.stream(A1)
    assert second.recorded_at == first.recorded_at
    as_of = engine.state(A1, eb.Target(as_of=first.recorded_at))
    assert as_of.state.balance == 1  # both were recorded "at" that instant


@pytest.mark.parametrize("snapshot_every", [0, 3])
def test_occurred_by_with_late_events(env: Env, snapshot_every: int) -> None:
    """Events recorded in one order but occurred in another: the state "as it really was"
    at T folds exactly the events that occurred by T, whatever order they came in."""
    engine = env.engine(snapshot_every=snapshot_every)
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    engine.execute(bank.OpenAccount(account_id="a1"), occurred_at=jan)
    days = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]
    for i, day in enumerate(days):
        engine.execute(
            bank.Deposit(account_id="a1", amount=2**i),
            occurred_at=datetime(2026, 2, day, 12, tzinfo=UTC),
        )
    records = env.stream(A1)
    assert [r.occurred_at.day for r in records[1:]] == days
    probes = [jan - US, jan]
    for day in range(1, 12):
        noon = datetime(2026, 2, day, 12, tzinfo=UTC)
        probes += [noon - US, noon, noon + timedelta(hours=6)]
    used = 0
    for t in probes:
        want = [r for r in records if r.occurred_at <= t]
        expected = fold(bank.app, A1, want)
        for use_snapshots in (True, False):
            got = engine.state(A1, eb.Target(occurred_by=t), use_snapshots=use_snapshots)
            assert got.state == expected, (t, use_snapshots)
            if got.snapshot is not None:
                used += 1
                assert got.snapshot.max_occurred_at is not None
                assert got.snapshot.max_occurred_at <= t
        whole = engine.app_state(eb.Target(occurred_by=t))
        assert whole.states == ({A1: expected} if want else {})
    assert (used > 0) == bool(snapshot_every)
    # the snapshot at version 3 (occurred Jan 1, Feb 5, Feb 1) serves Feb 5 but not Feb 4
    if snapshot_every:
        feb5 = engine.state(A1, eb.Target(occurred_by=datetime(2026, 2, 5, 12, tzinfo=UTC)))
        assert feb5.snapshot is not None and feb5.snapshot.version == 3
        feb4 = engine.state(A1, eb.Target(occurred_by=datetime(2026, 2, 4, 12, tzinfo=UTC)))
        assert feb4.snapshot is None


def test_two_targets_and_bad_targets_are_refused(env: Env) -> None:
    t = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(eb.InvalidInput, match=r"at most one target.*at_version, at_position"):
        eb.Target(at_version=1, at_position=2)
    with pytest.raises(eb.InvalidInput, match="as_of, occurred_by"):
        eb.Target(as_of=t, occurred_by=t)
    with pytest.raises(eb.InvalidInput, match="at most one target"):
        eb.Target(at_position=1, as_of=t)
    with pytest.raises(eb.InvalidInput, match=r"as_of .* has no time zone"):
        eb.Target(as_of=datetime(2026, 3, 1))
    with pytest.raises(eb.InvalidInput, match=r"occurred_by .* has no time zone"):
        eb.Target(occurred_by=datetime(2026, 3, 1))
    with pytest.raises(eb.InvalidInput, match="as_of must be a datetime"):
        eb.Target(as_of="2026-03-01")  # type: ignore[arg-type]
    for bad in (-1, True, 1.0, "3"):
        with pytest.raises(eb.InvalidInput, match="at_version must be an integer >= 0"):
            eb.Target(at_version=bad)  # type: ignore[arg-type]
        with pytest.raises(eb.InvalidInput, match="at_position must be an integer >= 0"):
            eb.Target(at_position=bad)  # type: ignore[arg-type]
    engine = env.engine()
    with pytest.raises(eb.InvalidInput, match="a version names a point in one stream"):
        engine.app_state(eb.Target(at_version=1))
    with pytest.raises(eb.InvalidInput, match="in no category"):
        engine.state("ledger-1")


# -- day-end cut-offs ----------------------------------------------------------------------------

DAY1, DAY2, DAY3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def _three_days(env: Env, engine: eb.Engine) -> dict[date, int]:
    """Commands on three business days (UTC); the last position of each day."""
    last: dict[date, int] = {}
    env.clock.set(datetime(2026, 3, 1, 22, 0, tzinfo=UTC))
    open_account(engine, "a1", 100)
    open_account(engine, "a2", 10)
    engine.execute(bank.Withdraw(account_id="a2", amount=500))  # refused
    last[DAY1] = env.store.head_position()
    env.clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    for i in range(3):
        engine.execute(bank.Transfer(from_account="a1", to_account="a2", amount=10 + i))
    open_account(engine, "a3", 1)
    last[DAY2] = env.store.head_position()
    env.clock.set(datetime(2026, 3, 3, 10, 0, tzinfo=UTC))
    engine.execute(bank.Deposit(account_id="a3", amount=2))
    engine.execute(bank.Transfer(from_account="a2", to_account="a3", amount=5))
    last[DAY3] = env.store.head_position()
    return last


def test_day_end_is_the_state_recorded_by_midnight(env: Env) -> None:
    engine = env.engine(snapshot_every=0)
    last = _three_days(env, engine)
    log = env.log()

    day1 = engine.day_end(DAY1)
    assert day1.position == last[DAY1] == day_end_position(env.store, DAY1, "UTC")
    assert day1.states == fold_all(bank.app, log[: last[DAY1]])
    plain = engine.app_state(eb.Target(at_position=last[DAY1]), use_snapshots=False)
    assert day1.states == plain.states and day1.state_hash() == plain.state_hash()
    [snap] = env.store.snapshots().all(DAY_END_KEY)
    assert (snap.label, snap.position, snap.version) == ("2026-03-01", last[DAY1], 0)
    assert snap.state_hash == day1.state_hash()
    assert snap.code_version == "account:1"
    assert snap.recorded_at == log[last[DAY1] - 1].recorded_at

    # a later state starts from the cut-off and folds only what came after
    later = engine.app_state(eb.Target(at_position=last[DAY2] + 1))
    assert later.snapshot == snap
    assert later.folded == sum(
        1 for r in log[last[DAY1] : last[DAY2] + 1] if not r.stream.startswith("$")
    )
    assert later.states == fold_all(bank.app, log[: last[DAY2] + 1])
    assert (
        later.states
        == engine.app_state(eb.Target(at_position=last[DAY2] + 1), use_snapshots=False).states
    )

    day2 = engine.day_end(DAY2)  # made from day 1's cut-off
    assert day2.snapshot == snap and day2.position == last[DAY2]
    assert day2.states == fold_all(bank.app, log[: last[DAY2]])
    labels = [s.label for s in env.store.snapshots().all(DAY_END_KEY)]
    assert labels == ["2026-03-01", "2026-03-02"]
    now = engine.app_state()
    assert now.snapshot is not None and now.snapshot.label == "2026-03-02"
    assert now.states == engine.app_state(use_snapshots=False).states == fold_all(bank.app, log)
    # before day 2's cut-off, only day 1's serves
    mid = engine.app_state(eb.Target(at_position=last[DAY2] - 1))
    assert mid.snapshot == snap
    # a time target is served by the cut-offs too
    as_of = engine.app_state(eb.Target(as_of=datetime(2026, 3, 2, 23, tzinfo=UTC)))
    assert as_of.snapshot is not None and as_of.snapshot.label == "2026-03-02"
    assert as_of.states == day2.states
    assert engine.day_end(DAY3).states == fold_all(bank.app, log)
    # stream states are unaffected by whole-state cut-offs
    assert engine.state(A1).snapshot is None


def test_day_end_before_anything_was_recorded(env: Env) -> None:
    engine = env.engine()
    assert engine.day_end(DAY1).position == 0  # an empty store
    _three_days(env, engine)
    before = engine.day_end(date(2026, 2, 28))
    assert before.position == 0 and before.states == {}
    assert engine.app_state(eb.Target(at_position=3)).states == fold_all(bank.app, env.log()[:3])


def test_an_event_recorded_at_midnight_belongs_to_the_next_day(env: Env) -> None:
    engine = env.engine()
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    env.clock.set(midnight - timedelta(milliseconds=3))
    open_account(engine, "a1")  # engine reads -3ms, store -2ms
    engine.execute(bank.Deposit(account_id="a1", amount=1))  # engine -1ms, store at midnight
    first, second = env.stream(A1)
    assert first.recorded_at < midnight == second.recorded_at
    day1 = engine.day_end(DAY1)
    assert day1.position == 1 and day1.states[A1].balance == 0
    assert engine.day_end(DAY2).states[A1].balance == 1


def test_day_ends_in_the_business_time_zone(env: Env) -> None:
    engine = env.engine(business_tz="Asia/Shanghai")  # midnight there is 16:00 UTC
    env.clock.set(datetime(2026, 3, 1, 15, 59, tzinfo=UTC))
    open_account(engine, "a1")
    env.clock.set(datetime(2026, 3, 1, 16, 1, tzinfo=UTC))
    engine.execute(bank.Deposit(account_id="a1", amount=7))
    assert engine.day_end(DAY1).states[A1].balance == 0
    assert engine.day_end(DAY2).states[A1].balance == 7
    utc = env.engine(business_tz="UTC")
    assert utc.day_end(DAY1).states[A1].balance == 7
    bad = env.engine(business_tz="Mars/Olympus")
    with pytest.raises(eb.InvalidInput, match="business time zone 'Mars/Olympus' is unknown"):
        bad.day_end(DAY1)


def test_occurred_by_does_not_use_a_cut_off_with_later_occurred_events(env: Env) -> None:
    engine = env.engine(snapshot_every=0)
    env.clock.set(datetime(2026, 3, 1, 10, tzinfo=UTC))
    engine.execute(bank.OpenAccount(account_id="a1"), occurred_at=datetime(2026, 2, 1, tzinfo=UTC))
    engine.execute(
        bank.Deposit(account_id="a1", amount=1), occurred_at=datetime(2026, 3, 1, 9, tzinfo=UTC)
    )
    env.clock.set(datetime(2026, 3, 2, 10, tzinfo=UTC))
    engine.execute(  # late: recorded on day 2, occurred in February
        bank.Deposit(account_id="a1", amount=2), occurred_at=datetime(2026, 2, 10, tzinfo=UTC)
    )
    cut = engine.day_end(DAY1)
    assert cut.max_occurred_at == datetime(2026, 3, 1, 9, tzinfo=UTC)
    feb = engine.app_state(eb.Target(occurred_by=datetime(2026, 2, 28, tzinfo=UTC)))
    assert feb.snapshot is None and feb.states[A1].balance == 2
    march = engine.app_state(eb.Target(occurred_by=datetime(2026, 3, 1, 12, tzinfo=UTC)))
    assert march.snapshot is not None and march.snapshot.label == "2026-03-01"
    assert march.states[A1].balance == 3


def test_day_end_cut_offs_persist_across_reopening_the_log(log_env: Env) -> None:
    engine = log_env.engine()
    last = _three_days(log_env, engine)
    saved = engine.day_end(DAY2)
    log_env.reopen()
    engine = log_env.engine()
    later = engine.app_state(eb.Target(at_position=last[DAY3]))
    assert later.snapshot is not None and later.snapshot.label == "2026-03-02"
    assert later.snapshot.state_hash == saved.state_hash()
    assert later.states == engine.app_state(use_snapshots=False).states


def test_a_cut_off_made_by_other_code_is_ignored(env: Env) -> None:
    engine = env.engine()
    last = _three_days(env, engine)
    first = engine.day_end(DAY1)
    again = engine.day_end(DAY1)  # the same cut-off, saved again, replaces itself
    assert again.state_hash() == first.state_hash()
    assert [s.label for s in env.store.snapshots().all(DAY_END_KEY)] == ["2026-03-01"]
    accounts_v2 = dataclasses.replace(bank.accounts, version="2")
    other = env.engine(dataclasses.replace(bank.app, deciders=[accounts_v2]))
    later = other.app_state(eb.Target(at_position=last[DAY2]))
    assert later.snapshot is None
    assert later.states == engine.app_state(eb.Target(at_position=last[DAY2])).states
    assert engine.app_state(eb.Target(at_position=last[DAY2])).snapshot is not None
    other.day_end(DAY1)
    codes = [s.code_version for s in env.store.snapshots().all(DAY_END_KEY)]
    assert sorted(codes) == ["account:1", "account:2"]
