"""Properties of the examples over random command sequences (hypothesis, on the memory store):
money is conserved and never negative, replays agree with each other and with a replica,
reserved credit stays within the limit, and the deciders are deterministic, which the
determinism helper checks (and it catches deciders that read the clock or `random`)."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventbook as eb
from eventbook.examples import bank, shop
from eventbook.testing.determinism import DeterminismReport, check_deterministic

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ----------------------------------------------------------------------------------

ACCOUNTS = ["a1", "a2", "a3"]
account_ids = st.sampled_from(ACCOUNTS)
amounts = st.integers(min_value=1, max_value=300)
deposits = st.integers(min_value=1, max_value=1000)


def sequences(
    setup: st.SearchStrategy[list[eb.Command]], step: st.SearchStrategy[list[eb.Command]]
) -> st.SearchStrategy[list[eb.Command]]:
    """Command sequences that start by creating some aggregates (so that most commands get past
    `no_such_...` to the interesting checks), then 5 to 40 steps of one or more commands."""
    return st.builds(
        lambda first, steps: [*first, *(c for s in steps for c in s)],
        setup,
        st.lists(step, min_size=5, max_size=40),
    )


def one(*strategies: st.SearchStrategy[eb.Command]) -> st.SearchStrategy[list[eb.Command]]:
    return st.one_of(*strategies).map(lambda command: [command])


bank_commands = sequences(
    st.lists(account_ids, min_size=1, unique=True).map(
        lambda ids: [bank.OpenAccount(account_id=a) for a in ids]
    ),
    one(
        st.builds(bank.OpenAccount, account_id=account_ids),
        st.builds(bank.Deposit, account_id=account_ids, amount=deposits),
        st.builds(bank.Withdraw, account_id=account_ids, amount=amounts),
        st.builds(bank.Transfer, from_account=account_ids, to_account=account_ids, amount=amounts),
        st.builds(bank.Transfer, from_account=account_ids, to_account=account_ids, amount=amounts),
    ),
)

CUSTOMERS = ["c1", "c2"]
ORDERS = ["o1", "o2", "o3", "o4"]
customer_ids = st.sampled_from(CUSTOMERS)
order_ids = st.sampled_from(ORDERS)
OWNER = {"o1": "c1", "o2": "c1", "o3": "c2", "o4": "c2"}  # in the saga-like steps
limits = st.integers(min_value=0, max_value=500)


def place(order_id: str, total: int) -> list[eb.Command]:
    """What the saga will do for a new order: create it and reserve its credit."""
    customer_id = OWNER[order_id]
    return [
        shop.CreateOrder(order_id=order_id, customer_id=customer_id, total=total),
        shop.ReserveCredit(customer_id=customer_id, order_id=order_id, amount=total),
    ]


def cancel(order_id: str) -> list[eb.Command]:
    """What the saga will do for a cancelled order: release its credit."""
    customer_id = OWNER[order_id]
    return [
        shop.CancelOrder(order_id=order_id),
        shop.ReleaseCredit(customer_id=customer_id, order_id=order_id),
    ]


shop_commands = sequences(
    st.lists(st.tuples(customer_ids, limits), min_size=1, unique_by=lambda t: t[0]).map(
        lambda pairs: [shop.RegisterCustomer(customer_id=c, credit_limit=n) for c, n in pairs]
    ),
    st.one_of(
        st.builds(place, order_ids, amounts),
        st.builds(place, order_ids, amounts),
        st.builds(cancel, order_ids),
        one(
            st.builds(shop.RegisterCustomer, customer_id=customer_ids, credit_limit=limits),
            st.builds(
                shop.CreateOrder, order_id=order_ids, customer_id=customer_ids, total=amounts
            ),
            st.builds(
                shop.ReserveCredit, customer_id=customer_ids, order_id=order_ids, amount=amounts
            ),
            st.builds(shop.ReleaseCredit, customer_id=customer_ids, order_id=order_ids),
            st.builds(shop.ApproveOrder, order_id=order_ids),
            st.builds(
                shop.RejectOrder, order_id=order_ids, reason=st.sampled_from(["", "no stock"])
            ),
            st.builds(shop.CancelOrder, order_id=order_ids),
        ),
    ),
)


def run_all(app: eb.Application, commands: list[eb.Command]) -> tuple[eb.EventStore, eb.Engine]:
    store = eb.open_store("memory://")
    engine = eb.Engine(app, store)
    for command in commands:
        engine.execute(command)
    return store, engine


# -- (a) the bank: no negative balance, money conserved by transfers ---------------------------


@SETTINGS
@given(bank_commands)
def test_bank_balances_never_go_negative_and_transfers_conserve_money(
    commands: list[eb.Command],
) -> None:
    store = eb.open_store("memory://")
    engine = eb.Engine(bank.app, store)
    total = 0
    expected: dict[str, int] = {}  # a model: the balance of each open account
    for command in commands:
        outcome = engine.execute(command)
        if outcome.accepted:
            match command:
                case bank.OpenAccount(account_id=a):
                    expected[a] = 0
                case bank.Deposit(account_id=a, amount=n):
                    expected[a] += n
                    total += n
                case bank.Withdraw(account_id=a, amount=n):
                    expected[a] -= n
                    total -= n
                case bank.Transfer(from_account=a, to_account=b, amount=n):
                    expected[a] -= n
                    expected[b] += n
        balances = {a: engine.state(f"account-{a}").state.balance for a in ACCOUNTS}
        assert all(b >= 0 for b in balances.values()), (command, balances)
        assert sum(balances.values()) == total, (command, balances)
        assert {a: balances[a] for a in expected} == expected
    everything = engine.app_state(use_snapshots=False).states
    assert sum(s.balance for s in everything.values()) == total
    store.close()


# -- (b) replays agree with each other and with a replica ------------------------------------


@SETTINGS
@given(bank_commands)
def test_bank_replays_and_a_replica_reach_the_same_state_hash(commands: list[eb.Command]) -> None:
    store, engine = run_all(bank.app, commands)
    first = engine.app_state(use_snapshots=False)
    second = eb.Engine(bank.app, store).app_state(use_snapshots=False)
    assert first.state_hash() == second.state_hash() == eb.state_hash(first.states)
    assert first.position == second.position == store.head_position()
    replica = eb.Replica(bank.app, store)
    assert replica.catch_up() == store.head_position()
    assert replica.state_hash() == first.state_hash()
    # and the states the engine keeps are the states a replay finds
    for stream, state in first.states.items():
        assert engine.state(stream).state == state
    store.close()


@SETTINGS
@given(shop_commands)
def test_shop_replays_snapshots_and_a_replica_reach_the_same_state_hash(
    commands: list[eb.Command],
) -> None:
    app = dataclasses.replace(
        shop.app, snapshot_every=2
    )  # a snapshot every other event of a stream
    store, engine = run_all(app, commands)
    replay = engine.app_state(use_snapshots=False)
    assert eb.Engine(app, store).app_state(use_snapshots=False).state_hash() == (
        replay.state_hash()
    )
    replica = eb.Replica(app, store)
    replica.catch_up()
    assert replica.state_hash() == replay.state_hash()
    # a fresh engine loads each stream from its latest snapshot and the tail: the same state
    fresh = eb.Engine(app, store)
    for stream, state in replay.states.items():
        loaded = fresh.state(stream)
        assert loaded.state == state
        assert loaded.version == fresh.state(stream, use_snapshots=False).version
    store.close()


# -- (c) the shop: reserved credit stays within the limit --------------------------------------


@SETTINGS
@given(shop_commands)
def test_shop_reserved_credit_never_exceeds_the_limit(commands: list[eb.Command]) -> None:
    store = eb.open_store("memory://")
    engine = eb.Engine(shop.app, store)
    reserved = dict.fromkeys(CUSTOMERS, 0)  # a model: reserved minus released
    for command in commands:
        outcome = engine.execute(command)
        for event in outcome.events if outcome.accepted else []:
            if event.type == "CreditReserved":
                reserved[event.stream.removeprefix("customer-")] += event.data["amount"]
            elif event.type == "CreditReleased":
                reserved[event.stream.removeprefix("customer-")] -= event.data["amount"]
        for c in CUSTOMERS:
            customer = engine.state(f"customer-{c}").state
            assert 0 <= customer.reserved <= customer.credit_limit, (command, customer)
            assert customer.available_credit >= 0
            assert all(amount > 0 for amount in customer.reservations.values())
            assert customer.reserved == reserved[c]
    store.close()


# -- (d) the determinism helper ---------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bank_commands, bank_commands)
def test_the_bank_is_deterministic(before: list[eb.Command], commands: list[eb.Command]) -> None:
    store, _ = run_all(bank.app, before)  # states loaded from the store
    head = store.head_position()
    report = check_deterministic(bank.app, store, commands)
    assert report.commands == len(commands) == report.accepted + report.rejected
    assert store.head_position() == head  # nothing written
    store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shop_commands, shop_commands)
def test_the_shop_is_deterministic(before: list[eb.Command], commands: list[eb.Command]) -> None:
    store, engine = run_all(shop.app, before)
    head = store.head_position()
    report = check_deterministic(shop.app, engine, commands)
    assert report.commands == len(commands)
    assert store.head_position() == head
    store.close()


def test_the_helper_decides_against_the_stored_state_and_the_commands_before() -> None:
    store, _ = run_all(
        bank.app, [bank.OpenAccount(account_id="a1"), bank.Deposit(account_id="a1", amount=10)]
    )
    report = check_deterministic(
        bank.app,
        store,
        [
            bank.OpenAccount(account_id="a2"),  # accepted
            bank.Transfer(from_account="a1", to_account="a2", amount=10),  # 2 events
            bank.Withdraw(account_id="a2", amount=10),  # sees the transfer: accepted
            bank.Withdraw(account_id="a1", amount=1),  # insufficient_funds
        ],
    )
    assert report == DeterminismReport(commands=4, accepted=3, rejected=1, events=4)
    assert eb.Engine(bank.app, store).state("account-a2").state == bank.Account()  # not written
    store.close()


# The deliberately bad applications: a bank-like ledger whose decider or evolve reads something
# it must not. Each is built by `ledger` around a `stamp` function called in decide or evolve.


class Book(eb.Command, tag="Book"):
    entry_id: str
    amount: int

    def streams(self) -> tuple[str, ...]:
        return (f"ledger-{self.entry_id}",)


class Booked(eb.Event, tag="Booked"):
    amount: int
    stamp: str = ""


class Ledger(msgspec.Struct, frozen=True):
    total: int = 0
    stamps: tuple[str, ...] = ()


def ledger(*, decide_stamp=None, evolve_stamp=None) -> eb.Application:
    def decide(command: Book, state: Ledger, ctx: eb.Context) -> eb.Decision:
        if command.amount < 0:
            return eb.Rejected("negative", f"stamped {decide_stamp(ctx) if decide_stamp else ''}")
        return [Booked(amount=command.amount, stamp=decide_stamp(ctx) if decide_stamp else "")]

    def evolve(state: Ledger, event: Booked) -> Ledger:
        stamp = evolve_stamp() if evolve_stamp else event.stamp
        return Ledger(state.total + event.amount, (*state.stamps, stamp))

    return eb.Application(
        name="ledger",
        deciders=[eb.Decider("ledger", Ledger(), decide, evolve)],
        commands=[Book],
        events=[Booked],
    )


BOOKINGS = [Book(entry_id="e1", amount=5), Book(entry_id="e1", amount=7)]


@pytest.mark.parametrize(
    "stamp",
    [
        lambda ctx: ctx.now.isoformat(),
        lambda ctx: str(ctx.random.random()),
        lambda ctx: f"{ctx.command_id}:{ctx.seed}:{ctx.random.randrange(10**9)}",
    ],
    ids=["ctx.now", "ctx.random", "ctx.seed"],
)
def test_a_decider_that_uses_only_its_ctx_passes(stamp) -> None:
    store = eb.open_store("memory://")
    report = check_deterministic(ledger(decide_stamp=stamp), store, BOOKINGS)
    assert report == DeterminismReport(commands=2, accepted=2, rejected=0, events=2)


@pytest.mark.parametrize(
    "stamp",
    [
        lambda ctx: datetime.now().isoformat(),
        lambda ctx: datetime.now(UTC).date().isoformat(),  # only the day: still caught
        lambda ctx: str(random.random()),
        lambda ctx: str(random.randrange(10**9)),
        lambda ctx: str(uuid.uuid4()),
    ],
    ids=["datetime.now", "today", "random.random", "random.randrange", "uuid4"],
)
def test_a_decider_that_reads_the_clock_or_random_is_caught(stamp) -> None:
    store = eb.open_store("memory://")
    bad = ledger(decide_stamp=stamp)
    with pytest.raises(AssertionError) as caught:
        check_deterministic(bad, store, BOOKINGS)
    message = str(caught.value)
    assert "command #0 Book" in message
    assert "decided differently" in message
    assert "first:" in message and "second:" in message
    assert store.head_position() == 0


def test_a_rejection_that_reads_the_clock_is_caught() -> None:
    bad = ledger(decide_stamp=lambda ctx: datetime.now().isoformat())
    store = eb.open_store("memory://")
    with pytest.raises(AssertionError, match="negative"):
        check_deterministic(bad, store, [Book(entry_id="e1", amount=-1)])


def test_an_evolve_that_reads_the_clock_is_caught() -> None:
    bad = ledger(evolve_stamp=lambda: datetime.now().isoformat())
    store = eb.open_store("memory://")
    with pytest.raises(AssertionError) as caught:
        check_deterministic(bad, store, BOOKINGS)
    assert "folding its Booked event into ledger-e1" in str(caught.value)


def test_the_helper_leaves_the_random_module_as_it_was() -> None:
    random.seed(7)
    expected = random.Random(7).random()
    check_deterministic(ledger(decide_stamp=lambda ctx: str(random.random())), _stored(), [])
    assert random.random() == expected


def _stored() -> eb.EventStore:
    return eb.open_store("memory://")
