"""The shop example (seed 004): orders approved against a customer's credit limit, on the memory
store and on the embedded log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import eventbook as eb
from eventbook.examples import shop
from eventbook.examples.shop import (
    ApproveOrder,
    CancelOrder,
    CreateOrder,
    RegisterCustomer,
    RejectOrder,
    ReleaseCredit,
    ReserveCredit,
)


@pytest.fixture(params=["memory", "log"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[eb.EventStore]:
    url = "memory://" if request.param == "memory" else str(tmp_path / "shop")
    opened = eb.open_store(url)
    yield opened
    opened.close()


@pytest.fixture
def engine(store: eb.EventStore) -> eb.Engine:
    return eb.Engine(shop.app, store)


def customer(engine: eb.Engine, customer_id: str = "c1") -> shop.Customer:
    return engine.state(f"customer-{customer_id}").state


def order(engine: eb.Engine, order_id: str) -> shop.Order:
    return engine.state(f"order-{order_id}").state


def ok(engine: eb.Engine, command: eb.Command) -> eb.Outcome:
    outcome = engine.execute(command)
    assert outcome.accepted, outcome.rejection
    return outcome


def rejected(engine: eb.Engine, command: eb.Command) -> str:
    """The code of the rejection of a command (which must be rejected and change nothing)."""
    before = engine.app_state(use_snapshots=False).state_hash()
    outcome = engine.execute(command)
    assert not outcome.accepted
    assert outcome.rejection is not None
    assert [e.type for e in outcome.events] == ["CommandRejected"]
    assert outcome.events[0].stream.startswith("$rejected-")
    assert engine.app_state(use_snapshots=False).state_hash() == before
    return outcome.rejection.code


def place(engine: eb.Engine, order_id: str, total: int, customer_id: str = "c1") -> str:
    """Create an order and reserve its credit, as the saga will: returns the reservation's
    event type (CreditReserved or CreditLimitExceeded)."""
    ok(engine, CreateOrder(order_id=order_id, customer_id=customer_id, total=total))
    outcome = ok(engine, ReserveCredit(customer_id=customer_id, order_id=order_id, amount=total))
    [event] = outcome.events
    return event.type


def test_an_order_within_the_limit_is_approved(engine: eb.Engine) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=1000))
    created = ok(engine, CreateOrder(order_id="o1", customer_id="c1", total=300))
    assert [(e.stream, e.type) for e in created.events] == [("order-o1", "OrderCreated")]
    assert order(engine, "o1") == shop.Order("o1", "c1", 300, "PENDING")

    reserved = ok(engine, ReserveCredit(customer_id="c1", order_id="o1", amount=300))
    assert [(e.stream, e.type, e.data) for e in reserved.events] == [
        ("customer-c1", "CreditReserved", {"order_id": "o1", "amount": 300})
    ]
    ok(engine, ApproveOrder(order_id="o1"))

    assert order(engine, "o1").status == "APPROVED"
    c = customer(engine)
    assert (c.credit_limit, c.reserved, c.available_credit) == (1000, 300, 700)
    assert c.reservations == {"o1": 300}


def test_a_reservation_up_to_exactly_the_limit_is_accepted(engine: eb.Engine) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=500))
    assert place(engine, "o1", 200) == "CreditReserved"
    assert place(engine, "o2", 300) == "CreditReserved"
    assert customer(engine).available_credit == 0
    assert place(engine, "o3", 1) == "CreditLimitExceeded"


def test_over_the_limit_is_a_credit_limit_exceeded_event_not_a_rejection(
    engine: eb.Engine,
) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=1000))
    assert place(engine, "o1", 700) == "CreditReserved"
    ok(engine, CreateOrder(order_id="o2", customer_id="c1", total=400))

    outcome = ok(engine, ReserveCredit(customer_id="c1", order_id="o2", amount=400))

    assert outcome.rejection is None
    [event] = outcome.events
    assert (event.stream, event.type) == ("customer-c1", "CreditLimitExceeded")
    assert event.data == {"order_id": "o2", "amount": 400, "available": 300}
    assert event.as_(shop.CreditLimitExceeded) == shop.CreditLimitExceeded(
        order_id="o2", amount=400, available=300
    )
    c = customer(engine)
    assert c.reservations == {"o1": 700}  # the refusal reserved nothing
    # the saga (a later issue) rejects the order in reaction:
    ok(engine, RejectOrder(order_id="o2", reason="credit limit exceeded"))
    assert order(engine, "o2") == shop.Order("o2", "c1", 400, "REJECTED", "credit limit exceeded")


def test_cancel_and_release_restore_the_available_credit(engine: eb.Engine) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=1000))
    assert place(engine, "o1", 600) == "CreditReserved"
    ok(engine, ApproveOrder(order_id="o1"))
    assert place(engine, "o2", 300) == "CreditReserved"  # still pending
    assert customer(engine).available_credit == 100

    ok(engine, CancelOrder(order_id="o1"))  # an approved order
    released = ok(engine, ReleaseCredit(customer_id="c1", order_id="o1"))
    assert [(e.type, e.data) for e in released.events] == [
        ("CreditReleased", {"order_id": "o1", "amount": 600})
    ]
    assert customer(engine).available_credit == 700

    ok(engine, CancelOrder(order_id="o2"))  # a pending order
    ok(engine, ReleaseCredit(customer_id="c1", order_id="o2"))
    c = customer(engine)
    assert (c.reserved, c.available_credit, c.reservations) == (0, 1000, {})
    assert order(engine, "o1").status == order(engine, "o2").status == "CANCELLED"
    # the freed credit is usable again
    assert place(engine, "o3", 1000) == "CreditReserved"


def test_releasing_twice_is_rejected_and_changes_nothing(engine: eb.Engine) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=100))
    place(engine, "o1", 40)
    ok(engine, ReleaseCredit(customer_id="c1", order_id="o1"))
    assert rejected(engine, ReleaseCredit(customer_id="c1", order_id="o1")) == "no_such_reservation"
    assert rejected(engine, ReleaseCredit(customer_id="c1", order_id="zz")) == "no_such_reservation"
    assert customer(engine).available_credit == 100


def test_a_retried_command_id_is_not_decided_twice(engine: eb.Engine) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=100))
    place(engine, "o1", 40)
    first = engine.execute(ReleaseCredit(customer_id="c1", order_id="o1"), command_id="rel-1")
    again = engine.execute(ReleaseCredit(customer_id="c1", order_id="o1"), command_id="rel-1")
    assert first.accepted and again.accepted and again.duplicate
    assert [e.position for e in again.events] == [e.position for e in first.events]


def test_rejections_have_stable_codes(engine: eb.Engine) -> None:
    assert rejected(engine, ReserveCredit(customer_id="c1", order_id="o1", amount=1)) == (
        "no_such_customer"
    )
    assert rejected(engine, ReleaseCredit(customer_id="c1", order_id="o1")) == "no_such_customer"
    assert rejected(engine, CreateOrder(order_id="o1", customer_id="c1", total=5)) == (
        "no_such_customer"
    )
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=100))
    assert rejected(engine, RegisterCustomer(customer_id="c1", credit_limit=5)) == "customer_exists"
    for command in (
        ApproveOrder(order_id="o1"),
        RejectOrder(order_id="o1"),
        CancelOrder(order_id="o1"),
    ):
        assert rejected(engine, command) == "no_such_order"

    place(engine, "o1", 50)
    assert rejected(engine, CreateOrder(order_id="o1", customer_id="c1", total=5)) == "order_exists"
    assert rejected(engine, ReserveCredit(customer_id="c1", order_id="o1", amount=5)) == (
        "credit_already_reserved"
    )
    ok(engine, ApproveOrder(order_id="o1"))
    assert rejected(engine, ApproveOrder(order_id="o1")) == "order_not_pending"
    assert rejected(engine, RejectOrder(order_id="o1", reason="late")) == "order_not_pending"

    ok(engine, CreateOrder(order_id="o2", customer_id="c1", total=5))
    ok(engine, RejectOrder(order_id="o2", reason="no stock"))
    assert rejected(engine, ApproveOrder(order_id="o2")) == "order_not_pending"
    assert rejected(engine, CancelOrder(order_id="o2")) == "order_not_cancellable"

    ok(engine, CancelOrder(order_id="o1"))
    assert rejected(engine, CancelOrder(order_id="o1")) == "order_not_cancellable"
    assert rejected(engine, ApproveOrder(order_id="o1")) == "order_not_pending"


def test_rejections_are_in_the_order_history(engine: eb.Engine) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=100))
    place(engine, "o1", 50)
    ok(engine, ApproveOrder(order_id="o1"))
    rejected(engine, ApproveOrder(order_id="o1"))
    ok(engine, CancelOrder(order_id="o1"))

    entries = list(engine.history("order-o1"))

    assert [e.command["type"] for e in entries] == [
        "CreateOrder",
        "ApproveOrder",
        "ApproveOrder",
        "CancelOrder",
    ]
    assert [e.rejection and e.rejection["code"] for e in entries] == [
        None,
        None,
        "order_not_pending",
        None,
    ]
    assert [e.state.status for e in entries] == ["PENDING", "APPROVED", "APPROVED", "CANCELLED"]


def test_commands_run_from_json_as_the_cli_gives_them(engine: eb.Engine) -> None:
    engine.run("RegisterCustomer", '{"customer_id": "c1", "credit_limit": 10}')
    outcome = engine.run("CreateOrder", {"order_id": "o1", "customer_id": "c1", "total": 7})
    assert outcome.accepted
    for name, data in [
        ("RegisterCustomer", {"customer_id": "c2", "credit_limit": -1}),
        ("CreateOrder", {"order_id": "o2", "customer_id": "c1", "total": 0}),
        ("ReserveCredit", {"customer_id": "c1", "order_id": "o1", "amount": 1.5}),
        ("CancelOrder", {"order_id": "has space"}),
    ]:
        with pytest.raises(eb.InvalidInput):
            engine.run(name, data)


def test_states_survive_a_reopen_and_a_replay(tmp_path: Path) -> None:
    path = str(tmp_path / "shop")
    with eb.open_store(path) as store:
        engine = eb.Engine(shop.app, store)
        ok(engine, RegisterCustomer(customer_id="c1", credit_limit=1000))
        place(engine, "o1", 400)
        place(engine, "o2", 700)  # over the limit
        ok(engine, ApproveOrder(order_id="o1"))
        ok(engine, RejectOrder(order_id="o2", reason="credit"))
        before = engine.app_state(use_snapshots=False)
    with eb.open_store(path) as store:
        engine = eb.Engine(shop.app, store)
        after = engine.app_state(use_snapshots=False)
        assert after.state_hash() == before.state_hash()
        assert customer(engine).reservations == {"o1": 400}
        assert order(engine, "o2").status == "REJECTED"
        replica = eb.Replica(shop.app, store)
        replica.catch_up()
        assert replica.state_hash() == before.state_hash()


def test_ids_are_short_enough_for_the_rejection_streams(engine: eb.Engine) -> None:
    longest = "\U0001f600" * 50  # 200 UTF-8 bytes
    ok(engine, RegisterCustomer(customer_id=longest, credit_limit=1))
    assert rejected(engine, RegisterCustomer(customer_id=longest, credit_limit=1)) == (
        "customer_exists"
    )
    with pytest.raises(eb.InvalidInput):
        engine.run("RegisterCustomer", {"customer_id": "x" * 51, "credit_limit": 1})
