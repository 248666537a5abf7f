"""The command engine: accepted and rejected commands, idempotency, concurrency, bad input."""

from __future__ import annotations

import dis
import random
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from engine_support import Env, balance, open_account

import eventbook as eb
from eventbook.engine.codec import parse_command
from eventbook.engine.model import REJECTED_PREFIX
from eventbook.examples import bank

A1 = "account-a1"
A2 = "account-a2"


def bank_with(decide: Any = bank.decide, **changes: Any) -> eb.Application:
    """The bank with another decide function (and other settings)."""
    accounts = eb.Decider("account", bank.Account(), decide, bank.evolve, version="1")
    settings: dict[str, Any] = {"snapshot_every": 100, "record_rejections": True}
    settings.update(changes)
    return eb.Application(
        name="bank",
        deciders=[accounts],
        commands=bank.app.commands,
        events=bank.app.events,
        **settings,
    )


# -- accepted commands ---------------------------------------------------------------------------


def test_accepted_command_records_its_events_with_the_command(env: Env) -> None:
    engine = env.engine()
    now = env.clock.peek()
    out = engine.execute(bank.OpenAccount(account_id="a1"), command_id="c-1")

    assert out.accepted and not out.duplicate and out.rejection is None
    assert out.command_id == "c-1" and out.command_type == "OpenAccount"
    [rec] = out.events
    assert (rec.position, rec.stream, rec.version) == (1, A1, 1)
    assert rec.type == "AccountOpened" and rec.data == {"account_id": "a1"}
    assert rec.commit_id == "cmd:c-1"
    meta = rec.metadata
    assert meta["command"] == {"type": "OpenAccount", "id": "c-1", "data": {"account_id": "a1"}}
    assert meta["now"] == now.isoformat()  # the engine's clock, read before the store's
    assert isinstance(meta["seed"], int) and 0 <= meta["seed"] < 2**63
    assert rec.recorded_at > now  # the store's reading of the same clock came later
    assert rec.occurred_at == rec.recorded_at
    assert out.position == 1
    # the outcome's events are exactly what the store recorded
    assert out.events == env.store.read_commit("cmd:c-1") == env.log()


def test_versions_and_positions_advance_per_stream_and_globally(env: Env) -> None:
    engine = env.engine()
    outs = [
        engine.execute(bank.OpenAccount(account_id="a1")),
        engine.execute(bank.OpenAccount(account_id="a2")),
        engine.execute(bank.Deposit(account_id="a1", amount=5)),
        engine.execute(bank.Deposit(account_id="a2", amount=7)),
        engine.execute(bank.Withdraw(account_id="a1", amount=2)),
    ]
    placed = [(o.events[0].stream, o.events[0].version, o.position) for o in outs]
    assert placed == [(A1, 1, 1), (A2, 1, 2), (A1, 2, 3), (A2, 2, 4), (A1, 3, 5)]
    assert all(o.accepted and len(o.events) == 1 for o in outs)
    assert [r.type for r in env.stream(A1)] == ["AccountOpened", "Deposited", "Withdrawn"]
    assert engine.state(A1).state == bank.Account("a1", True, 3, 2)
    assert engine.state(A1).version == 3 and engine.state(A1).position == 5
    assert engine.state(A2).state == bank.Account("a2", True, 7, 1)
    # every command id is new when none is given
    ids = [o.command_id for o in outs]
    assert len(set(ids)) == len(ids)
    assert [o.events[0].commit_id for o in outs] == [f"cmd:{i}" for i in ids]


def test_context_gives_now_and_a_seeded_random_that_are_recorded(env: Env) -> None:
    class Roll(eb.Command, tag="Roll"):
        die_id: str

        def streams(self) -> tuple[str, ...]:
            return (f"die-{self.die_id}",)

    class Rolled(eb.Event, tag="Rolled"):
        value: float
        at: str
        command_id: str

    def decide(command: Any, state: Any, ctx: eb.Context) -> eb.Decision:
        assert ctx.state(f"die-{command.die_id}") == state
        with pytest.raises(KeyError, match="not one of the streams"):
            ctx.state("die-other")
        return Rolled(value=ctx.random.random(), at=ctx.now.isoformat(), command_id=ctx.command_id)

    app = eb.Application(
        name="dice",
        deciders=[eb.Decider("die", 0, decide, lambda s, e: s + 1)],
        commands=[Roll],
        events=[Rolled],
    )
    out = env.engine(app).execute(Roll(die_id="d"), command_id="r-1")
    [rec] = out.events
    meta = rec.metadata
    # a replay can re-decide: the same seed gives the same draw, `now` is the recorded one
    assert rec.data["value"] == random.Random(meta["seed"]).random()
    assert rec.data["at"] == meta["now"]
    assert rec.data["command_id"] == "r-1"
    assert meta["command"] == {"type": "Roll", "id": "r-1", "data": {"die_id": "d"}}


def test_caller_metadata_is_added_to_every_event(env: Env) -> None:
    engine = env.engine()
    open_account(engine, "a1", 10)
    open_account(engine, "a2")
    out = engine.execute(
        bank.Transfer(from_account="a1", to_account="a2", amount=3),
        metadata={"user": "ann", "trace": 7},
    )
    for rec in out.events:
        assert rec.metadata["user"] == "ann" and rec.metadata["trace"] == 7
        assert rec.metadata["command"]["type"] == "Transfer"
    # the engine's own keys cannot be replaced
    for key in ("command", "now", "seed"):
        with pytest.raises(eb.InvalidInput, match="recorded by the engine"):
            engine.execute(bank.Deposit(account_id="a1", amount=1), metadata={key: "mine"})
    assert env.store.head_position() == out.position


def test_transfer_is_two_events_in_two_streams_in_one_commit(env: Env) -> None:
    engine = env.engine()
    open_account(engine, "a1", 10)
    open_account(engine, "a2", 1)
    head = env.store.head_position()
    out = engine.execute(
        bank.Transfer(from_account="a1", to_account="a2", amount=4), command_id="t-1"
    )

    assert out.accepted
    sent, received = out.events
    assert (sent.stream, sent.type, sent.version) == (A1, "TransferSent", 3)
    assert (received.stream, received.type, received.version) == (A2, "TransferReceived", 3)
    assert (sent.position, received.position) == (head + 1, head + 2)
    assert sent.commit_id == received.commit_id == "cmd:t-1"
    assert sent.data == {"to_account": "a2", "amount": 4}
    assert received.data == {"from_account": "a1", "amount": 4}
    assert sent.metadata["command"] == received.metadata["command"]
    assert sent.metadata["seed"] == received.metadata["seed"]
    assert sent.recorded_at == received.recorded_at
    assert env.store.read_commit("cmd:t-1") == out.events
    assert balance(engine, "a1") == 6 and balance(engine, "a2") == 5
    # the engine's cached states agree with a fresh engine's
    fresh = env.engine()
    assert fresh.state(A1).state == engine.state(A1).state
    assert balance(fresh, "a2") == 5


def test_transfer_to_an_account_not_open_is_rejected(env: Env) -> None:
    engine = env.engine()
    open_account(engine, "a1", 10)
    out = engine.execute(bank.Transfer(from_account="a1", to_account="zz", amount=1))
    assert not out.accepted and out.rejection == eb.Rejected(
        "no_such_account", "account zz is not open"
    )
    assert env.store.stream_version("account-zz") == 0
    assert balance(engine, "a1") == 10


# -- rejected commands ---------------------------------------------------------------------------


def test_rejection_is_recorded_as_one_nop_event_beside_the_stream(env: Env) -> None:
    engine = env.engine()
    open_account(engine, "a1", 3)
    before = env.stream(A1)
    out = engine.execute(bank.Withdraw(account_id="a1", amount=5), command_id="w-1")

    assert not out.accepted and not out.duplicate
    assert out.rejection == eb.Rejected("insufficient_funds", "balance 3 is less than 5")
    [nop] = out.events
    assert nop.stream == REJECTED_PREFIX + A1 == "$rejected-account-a1"
    assert (nop.type, nop.version, nop.position) == ("CommandRejected", 1, 3)
    assert nop.data == {
        "command": "Withdraw",
        "command_id": "w-1",
        "code": "insufficient_funds",
        "detail": "balance 3 is less than 5",
        "data": {"account_id": "a1", "amount": 5},
    }
    assert nop.metadata["command"] == {
        "type": "Withdraw",
        "id": "w-1",
        "data": {"account_id": "a1", "amount": 5},
    }
    assert "now" in nop.metadata and "seed" in nop.metadata
    assert nop.commit_id == "cmd:w-1"
    assert env.store.read_commit("cmd:w-1") == [nop]
    # the account is unchanged: same events, same state
    assert env.stream(A1) == before
    assert engine.state(A1).state == bank.Account("a1", True, 3, 1)
    assert out.position == 3

    again = engine.execute(bank.Withdraw(account_id="a1", amount=9))
    assert again.events[0].version == 2 and again.events[0].stream == nop.stream
    assert env.store.stream_version(A1) == 2


def test_rejection_of_a_command_on_a_stream_never_written(env: Env) -> None:
    engine = env.engine()
    out = engine.execute(bank.Deposit(account_id="ghost", amount=1))
    assert out.rejection == eb.Rejected("no_such_account", "account ghost is not open")
    assert [r.stream for r in env.log()] == ["$rejected-account-ghost"]
    assert env.store.stream_version("account-ghost") == 0
    again = engine.execute(bank.OpenAccount(account_id="a1"))
    dup = engine.execute(bank.OpenAccount(account_id="a1"))
    assert again.accepted and dup.rejection is not None
    assert dup.rejection.code == "account_exists"


def test_rejections_not_recorded_write_nothing(env: Env) -> None:
    engine = env.engine(record_rejections=False)
    open_account(engine, "a1", 3)
    head = env.store.head_position()
    out = engine.execute(bank.Withdraw(account_id="a1", amount=5), command_id="w-1")
    assert not out.accepted and out.rejection is not None
    assert out.rejection.code == "insufficient_funds"
    assert out.events == [] and out.position == 0
    assert env.store.head_position() == head
    assert env.store.read_commit("cmd:w-1") == []
    assert env.store.stream_version("$rejected-account-a1") == 0
    # with nothing recorded the id is free: the same id is decided again, and may now pass
    engine.execute(bank.Deposit(account_id="a1", amount=5))
    retry = engine.execute(bank.Withdraw(account_id="a1", amount=5), command_id="w-1")
    assert retry.accepted and not retry.duplicate
    assert balance(engine, "a1") == 3


# -- idempotent commands -------------------------------------------------------------------------


def test_the_same_command_id_twice_is_handled_once(env: Env) -> None:
    engine = env.engine()
    open_account(engine, "a1")
    first = engine.execute(bank.Deposit(account_id="a1", amount=5), command_id="d-1")
    log = env.log()
    second = engine.execute(bank.Deposit(account_id="a1", amount=5), command_id="d-1")

    assert not first.duplicate and second.duplicate
    assert second.accepted and second.rejection is None
    assert second.events == first.events
    assert second.command_id == "d-1" and second.command_type == "Deposit"
    assert env.log() == log
    assert balance(engine, "a1") == 5
    # another engine (no cache, no memory of the first) sees the same
    third = env.engine().execute(bank.Deposit(account_id="a1", amount=5), command_id="d-1")
    assert third.duplicate and third.events == first.events
    assert env.log() == log


def test_a_rejected_command_id_stays_rejected(env: Env) -> None:
    engine = env.engine()
    open_account(engine, "a1")
    first = engine.execute(bank.Withdraw(account_id="a1", amount=5), command_id="w-1")
    engine.execute(bank.Deposit(account_id="a1", amount=50))  # it would pass now
    log = env.log()
    second = engine.execute(bank.Withdraw(account_id="a1", amount=5), command_id="w-1")

    assert second.duplicate and not second.accepted
    assert (
        second.rejection
        == first.rejection
        == eb.Rejected("insufficient_funds", "balance 0 is less than 5")
    )
    assert second.events == first.events
    assert env.log() == log
    assert balance(engine, "a1") == 50


def test_a_different_command_with_a_used_id_gets_the_first_outcome(env: Env) -> None:
    engine = env.engine()
    open_account(engine, "a1", 10)
    first = engine.execute(bank.Deposit(account_id="a1", amount=5), command_id="x-1")
    log = env.log()

    other_body = engine.execute(bank.Deposit(account_id="a1", amount=999), command_id="x-1")
    assert other_body.duplicate and other_body.accepted
    assert other_body.events == first.events
    assert other_body.events[0].data == {"amount": 5}

    other_type = engine.execute(bank.Withdraw(account_id="a1", amount=1), command_id="x-1")
    assert other_type.duplicate and other_type.events == first.events
    assert other_type.command_type == "Deposit"  # what was handled under that id

    assert env.log() == log
    assert balance(engine, "a1") == 15


def test_command_ids_survive_reopening_the_log(log_env: Env) -> None:
    engine = log_env.engine()
    open_account(engine, "a1")
    first = engine.execute(bank.Deposit(account_id="a1", amount=5), command_id="d-1")
    rejected = engine.execute(bank.Withdraw(account_id="a1", amount=50), command_id="w-1")
    log_env.reopen()
    engine = log_env.engine()
    again = engine.execute(bank.Deposit(account_id="a1", amount=5), command_id="d-1")
    assert again.duplicate and again.events == first.events
    still = engine.execute(bank.Withdraw(account_id="a1", amount=50), command_id="w-1")
    assert still.duplicate and still.rejection == rejected.rejection
    assert log_env.store.head_position() == 3


def test_the_same_command_id_from_many_threads_is_handled_once(env: Env) -> None:
    engine = env.engine(retries=100)
    open_account(engine, "a1")
    barrier = threading.Barrier(8)
    outcomes: list[eb.Outcome] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            barrier.wait()
            outcomes.append(
                engine.execute(bank.Deposit(account_id="a1", amount=5), command_id="same")
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(outcomes) == 8
    assert sum(not o.duplicate for o in outcomes) == 1
    assert all(o.accepted and o.events == outcomes[0].events for o in outcomes)
    assert env.store.stream_version(A1) == 2
    assert balance(engine, "a1") == 5


# -- concurrency and retries ---------------------------------------------------------------------


def _run_threads(count: int, work: Any) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_deposits_on_one_account_lose_no_update(env: Env) -> None:
    decided = []

    def counting(command: Any, state: Any, ctx: eb.Context) -> eb.Decision:
        decided.append(command)
        return bank.decide(command, state, ctx)

    app = bank_with(decide=counting, retries=1000)
    engine = env.engine(app)
    open_account(engine, "a1")
    per_thread = 25
    outcomes: list[eb.Outcome] = []

    def deposit(i: int) -> None:
        for k in range(per_thread):
            outcomes.append(engine.execute(bank.Deposit(account_id="a1", amount=i * 100 + k + 1)))

    assert _run_threads(8, deposit) == []
    amounts = [i * 100 + k + 1 for i in range(8) for k in range(per_thread)]
    assert all(o.accepted and not o.duplicate for o in outcomes)
    assert len(outcomes) == len(amounts)
    assert len(decided) >= len(amounts) + 1  # conflicts are decided again
    assert balance(engine, "a1") == sum(amounts)
    assert balance(env.engine(), "a1") == sum(amounts)
    assert env.store.stream_version(A1) == 1 + len(amounts)
    versions = sorted(o.events[0].version for o in outcomes)
    assert versions == list(range(2, 2 + len(amounts)))
    assert sorted(r.data["amount"] for r in env.stream(A1)[1:]) == sorted(amounts)


def test_concurrent_withdrawals_never_overdraw(env: Env) -> None:
    engine = env.engine(retries=1000)
    open_account(engine, "a1", 100)
    outcomes: list[eb.Outcome] = []

    def withdraw(i: int) -> None:
        for _ in range(20):
            outcomes.append(engine.execute(bank.Withdraw(account_id="a1", amount=1)))

    assert _run_threads(8, withdraw) == []
    accepted = [o for o in outcomes if o.accepted]
    rejected = [o for o in outcomes if not o.accepted]
    assert len(accepted) == 100 and len(rejected) == 60
    assert all(o.rejection and o.rejection.code == "insufficient_funds" for o in rejected)
    assert balance(engine, "a1") == 0
    assert env.store.stream_version("$rejected-account-a1") == 60


def test_concurrent_transfers_keep_the_total(env: Env) -> None:
    engine = env.engine(retries=1000)
    names = ["a", "b", "c"]
    for name in names:
        open_account(engine, name, 100)

    def shuffle(i: int) -> None:
        rng = random.Random(i)
        for _ in range(15):
            src, dst = rng.sample(names, 2)
            engine.execute(
                bank.Transfer(from_account=src, to_account=dst, amount=rng.randint(1, 40))
            )

    assert _run_threads(8, shuffle) == []
    fresh = env.engine()
    balances = [balance(fresh, n) for n in names]
    assert sum(balances) == 300 and min(balances) >= 0
    assert balances == [balance(engine, n) for n in names]


def test_a_stale_cache_is_caught_by_the_expected_version(env: Env) -> None:
    one, two = env.engine(), env.engine()
    open_account(one, "a1", 10)  # `one` caches balance 10
    assert two.execute(bank.Withdraw(account_id="a1", amount=10)).accepted
    out = one.execute(bank.Withdraw(account_id="a1", amount=5))
    assert out.rejection == eb.Rejected("insufficient_funds", "balance 0 is less than 5")
    assert balance(one, "a1") == 0


def _meddler(env: Env, times: int) -> tuple[list[int], Any]:
    """A decide that appends a deposit behind the engine's back on its first `times` calls."""
    calls: list[int] = []

    def decide(command: Any, state: Any, ctx: eb.Context) -> eb.Decision:
        calls.append(1)
        if len(calls) <= times:
            env.store.append([eb.NewEvent.of(A1, bank.Deposited(amount=10))])
        return bank.decide(command, state, ctx)

    return calls, decide


def test_a_conflict_is_decided_again_on_the_new_state(env: Env) -> None:
    calls, decide = _meddler(env, times=1)
    engine = env.engine(bank_with(decide))
    open_account(env.engine(), "a1")
    # the first decision (balance 0) rejects; its NOP conflicts; the retry sees the deposit
    out = engine.execute(bank.Withdraw(account_id="a1", amount=5), command_id="w-1")
    assert len(calls) == 2
    assert out.accepted and not out.duplicate
    assert [r.type for r in env.stream(A1)] == ["AccountOpened", "Deposited", "Withdrawn"]
    assert env.store.stream_version("$rejected-account-a1") == 0
    assert balance(engine, "a1") == 5


def test_the_retry_limit_exhausted_raises_wrong_expected_version(env: Env) -> None:
    calls, decide = _meddler(env, times=1000)
    engine = env.engine(bank_with(decide, retries=3))
    open_account(env.engine(), "a1")
    with pytest.raises(eb.WrongExpectedVersion):
        engine.execute(bank.Deposit(account_id="a1", amount=1), command_id="d-1")
    assert len(calls) == 4  # the first try and three retries
    assert env.store.read_commit("cmd:d-1") == []
    assert [r.data.get("amount") for r in env.stream(A1)] == [None, 10, 10, 10, 10]
    # the id is still free
    quiet = env.engine()
    assert quiet.execute(bank.Deposit(account_id="a1", amount=1), command_id="d-1").accepted
    assert balance(quiet, "a1") == 41


def test_no_retries_means_one_try(env: Env) -> None:
    calls, decide = _meddler(env, times=1)
    engine = env.engine(bank_with(decide, retries=0))
    open_account(env.engine(), "a1")
    with pytest.raises(eb.WrongExpectedVersion):
        engine.execute(bank.Deposit(account_id="a1", amount=1))
    assert len(calls) == 1


# -- bad input -----------------------------------------------------------------------------------


def test_an_unknown_command_type_lists_the_known_ones(env: Env) -> None:
    engine = env.engine()
    with pytest.raises(eb.InvalidInput) as info:
        engine.run("Deposti", {"account_id": "a1", "amount": 1})
    message = str(info.value)
    assert "'Deposti'" in message and "bank" in message
    assert "known commands: Deposit, OpenAccount, Transfer, Withdraw" in message
    assert env.store.head_position() == 0


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"account_id": "a1", "amount": "ten"}, "$.amount"),
        ({"account_id": "a1", "amount": 0}, "$.amount"),
        ({"account_id": "a1", "amount": 1.5}, "$.amount"),
        ({"account_id": "a1"}, "amount"),
        ({"account_id": "a 1", "amount": 1}, "$.account_id"),
        ('{"account_id": "a1", "amount": ', "not JSON"),
        ("[1, 2]", "got [1, 2]"),
        (None, "got None"),
    ],
)
def test_ill_typed_input_names_the_field_and_what_is_expected(
    env: Env, data: object, says: str
) -> None:
    engine = env.engine()
    open_account(engine, "a1")
    head = env.store.head_position()
    with pytest.raises(eb.InvalidInput) as info:
        engine.run("Deposit", data)
    message = str(info.value)
    assert says in message
    assert "{account_id: string, amount: integer}" in message
    assert env.store.head_position() == head


def test_run_takes_json_text_and_dicts(env: Env) -> None:
    engine = env.engine()
    assert engine.run("OpenAccount", '{"account_id": "a1"}', command_id="o-1").accepted
    out = engine.run("Deposit", {"account_id": "a1", "amount": 4})
    assert out.accepted and out.events[0].data == {"amount": 4}
    assert parse_command(bank.app, "Deposit", b'{"account_id":"a1","amount":4}') == bank.Deposit(
        account_id="a1", amount=4
    )
    assert engine.run("OpenAccount", '{"account_id": "a1"}', command_id="o-1").duplicate


def test_execute_refuses_what_it_cannot_handle(env: Env) -> None:
    engine = env.engine()

    class Stray(eb.Command, tag="Stray"):  # not one of the bank's commands
        def streams(self) -> tuple[str, ...]:
            return ("account-a1",)

    class Elsewhere(eb.Command, tag="Deposit"):  # the bank's name, a stream of no category
        def streams(self) -> tuple[str, ...]:
            return ("ledger-1",)

    class Twice(eb.Command, tag="Transfer"):
        def streams(self) -> tuple[str, ...]:
            return ("account-a1", "account-a1")

    class Nowhere(eb.Command, tag="Withdraw"):
        def streams(self) -> tuple[str, ...]:
            return ()

    with pytest.raises(eb.InvalidInput, match=r"execute takes an eventbook\.Command"):
        engine.execute({"account_id": "a1"})  # type: ignore[arg-type]
    with pytest.raises(eb.InvalidInput, match="unknown command type 'Stray'"):
        engine.execute(Stray())
    with pytest.raises(eb.InvalidInput, match=r"'ledger-1' is in no category.*'account-…'"):
        engine.execute(Elsewhere())
    with pytest.raises(eb.InvalidInput, match="one or more different streams"):
        engine.execute(Twice())
    with pytest.raises(eb.InvalidInput, match="one or more different streams"):
        engine.execute(Nowhere())
    open_account(engine, "a1")
    head = env.store.head_position()
    deposit = bank.Deposit(account_id="a1", amount=1)
    with pytest.raises(eb.InvalidInput, match=r"occurred_at .* has no time zone"):
        engine.execute(deposit, occurred_at=datetime(2026, 1, 1))
    with pytest.raises(eb.InvalidInput, match="command id"):
        engine.execute(deposit, command_id="has space")
    with pytest.raises(eb.InvalidInput, match="command id"):
        engine.execute(deposit, command_id="")
    with pytest.raises(eb.InvalidInput, match="command id"):
        engine.execute(deposit, command_id="x" * 101)
    assert engine.execute(deposit, command_id="x" * 100).accepted  # the longest allowed
    assert env.store.head_position() == head + 1


def test_a_decider_returning_no_events_writes_nothing(env: Env) -> None:
    def decide(command: Any, state: Any, ctx: eb.Context) -> eb.Decision:
        return [] if isinstance(command, bank.Deposit) else [("account-a1", "not an event")]

    engine = env.engine(bank_with(decide))
    with pytest.raises(TypeError, match="decide returned no events"):
        engine.execute(bank.Deposit(account_id="a1", amount=1))
    with pytest.raises(TypeError, match="must return events"):
        engine.execute(bank.Withdraw(account_id="a1", amount=1))
    assert env.store.head_position() == 0


def test_application_settings_are_checked() -> None:
    with pytest.raises(eb.InvalidInput, match="snapshot_every"):
        bank_with(snapshot_every=-1)
    with pytest.raises(eb.InvalidInput, match="snapshot_every"):
        bank_with(snapshot_every=2.5)


def test_occurred_at_is_recorded_in_utc(env: Env) -> None:
    engine = env.engine()
    open_account(engine, "a1")
    local = datetime(2026, 2, 1, 8, 30, tzinfo=timezone(timedelta(hours=8)))
    out = engine.execute(bank.Deposit(account_id="a1", amount=1), occurred_at=local)
    [rec] = out.events
    assert rec.occurred_at == local and rec.occurred_at.utcoffset() == timedelta(0)
    assert rec.occurred_at == datetime(2026, 2, 1, 0, 30, tzinfo=UTC)
    assert out.events == env.store.read_commit(out.events[0].commit_id or "")
    assert msgspec.json.encode(out.events) == msgspec.json.encode(
        env.store.read_commit(out.events[0].commit_id or "")
    )


def test_a_command_never_decides_on_a_half_updated_cached_state(env: Env) -> None:
    """A reads the account (not cached: it folds it), B reads A's cached fold; B is paused
    right after it read the cached state, A then withdraws everything, B goes on. B must see
    the state and version of one moment (and so conflict), never the old state with A's new
    version, which would let it withdraw the same money again."""
    engine = env.engine()
    open_account(engine, "a1", 10)
    engine = env.engine()  # an empty cache: A's load folds the stream
    load = engine._load
    a_loaded, go_a, a_done, b_paused = (threading.Event() for _ in range(4))

    def loading(stream: str) -> Any:
        folded = load(stream)
        if threading.current_thread().name == "A" and not a_loaded.is_set():
            a_loaded.set()
            go_a.wait(10)
        return folded

    engine._load = loading  # type: ignore[method-assign]
    code = type(engine)._load.__code__
    instructions = list(dis.get_instructions(code))
    after_state = {
        instructions[i + 1].offset
        for i, ins in enumerate(instructions[:-1])
        if ins.opname == "LOAD_ATTR" and ins.argval == "state"
    }
    assert after_state, "Engine._load is expected to read a cached fold's .state"

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not code:
            return None
        frame.f_trace_opcodes = True

        def step(frame: Any, event: str, arg: Any) -> Any:
            if event == "opcode" and frame.f_lasti in after_state and not b_paused.is_set():
                b_paused.set()
                a_done.wait(10)
            return step

        return step

    results: dict[str, eb.Outcome] = {}

    def run_a() -> None:
        results["a"] = engine.execute(bank.Withdraw(account_id="a1", amount=10))
        a_done.set()

    def run_b() -> None:
        sys.settrace(trace)
        try:
            results["b"] = engine.execute(bank.Withdraw(account_id="a1", amount=10))
        finally:
            sys.settrace(None)

    a = threading.Thread(target=run_a, name="A")
    a.start()
    assert a_loaded.wait(10)
    b = threading.Thread(target=run_b, name="B")
    b.start()
    paused = b_paused.wait(10)
    go_a.set()
    a.join(10)
    b.join(10)
    assert paused, "B never read a cached state"
    assert results["a"].accepted
    assert not results["b"].accepted and results["b"].rejection is not None
    assert results["b"].rejection.code == "insufficient_funds"
    assert balance(env.engine(), "a1") == 0


def test_a_small_cache_gives_the_same_states(env: Env) -> None:
    engine = eb.Engine(bank.app, env.store, clock=env.clock, cache_size=1)
    names = ["a", "b", "c", "d"]
    for name in names:
        open_account(engine, name, 20)
    for i in range(30):
        src, dst = names[i % 4], names[(i * 3 + 1) % 4]
        if src != dst:
            engine.execute(bank.Transfer(from_account=src, to_account=dst, amount=i % 7 + 1))
        engine.execute(bank.Withdraw(account_id=names[i % 4], amount=5))
    fresh = env.engine()
    for name in names:
        assert engine.state(f"account-{name}").state == fresh.state(f"account-{name}").state
    assert sum(balance(fresh, n) for n in names) >= 0


def test_a_stream_written_but_not_named_is_reloaded(env: Env) -> None:
    """A decider may place an event in a stream its command did not name: the engine then
    forgets what it cached of that stream."""

    def decide(command: Any, state: Any, ctx: eb.Context) -> eb.Decision:
        if isinstance(command, bank.Withdraw) and command.account_id == "a1":
            return [bank.Withdrawn(amount=1), (A2, bank.Deposited(amount=100))]
        return bank.decide(command, state, ctx)

    engine = env.engine(bank_with(decide))
    open_account(engine, "a1", 5)
    open_account(engine, "a2", 1)  # a2 is cached with balance 1
    out = engine.execute(bank.Withdraw(account_id="a1", amount=1))
    assert [(r.stream, r.version) for r in out.events] == [(A1, 3), (A2, 3)]
    assert engine.execute(bank.Withdraw(account_id="a2", amount=101)).accepted
    assert balance(engine, "a2") == 0


def test_opening_an_account_someone_just_opened_is_refused(env: Env) -> None:
    """A stream never written is expected at version 0: a racing first write conflicts."""
    calls: list[int] = []

    def decide(command: Any, state: Any, ctx: eb.Context) -> eb.Decision:
        calls.append(1)
        if len(calls) == 1:
            env.store.append([eb.NewEvent.of(A1, bank.AccountOpened(account_id="a1"))])
        return bank.decide(command, state, ctx)

    engine = env.engine(bank_with(decide))
    out = engine.execute(bank.OpenAccount(account_id="a1"))
    assert len(calls) == 2
    assert out.rejection is not None and out.rejection.code == "account_exists"
    assert env.store.stream_version(A1) == 1
