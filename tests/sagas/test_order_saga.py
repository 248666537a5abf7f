"""The order saga of seed 004 (`eventbook.examples.shop.order_saga`) run by `eb.SagaRunner`, on
the memory store, the embedded log and NATS: approval, a rejection over the credit limit,
a cancellation compensated, the deadline for the credit check (and a late answer after it, which
has one outcome), bounded retries before the saga hears of a failure, a compensation that fails
and parks the saga until an operator retries it, a runner restarted from the store, and two
runners at once. The crash side is test_saga_crash.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import eventbook as eb
from eventbook.examples import shop
from eventbook.sagas.inspect import list_sagas, retry_saga, show_saga

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "log", "nats"])
def store(
    request: pytest.FixtureRequest, open_test_store: Callable[[str], eb.EventStore]
) -> eb.EventStore:
    return open_test_store(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(store: eb.EventStore, clock: Clock) -> eb.Engine:
    engine = eb.Engine(shop.app, store, clock=clock)
    engine.execute(shop.RegisterCustomer(customer_id="c1", credit_limit=1000))
    return engine


def order(engine: eb.Engine, order_id: str, total: int) -> None:
    outcome = engine.execute(shop.CreateOrder(order_id=order_id, customer_id="c1", total=total))
    assert outcome.accepted, outcome.rejection


def status(engine: eb.Engine, order_id: str) -> str:
    return engine.state(f"order-{order_id}").state.status


def reserved(engine: eb.Engine) -> dict[str, int]:
    return dict(engine.state("customer-c1").state.reservations)


def sagas(store: eb.EventStore) -> dict[str, str]:
    return {item.id: item.status for item in list_sagas(store)}


def events_of_type(store: eb.EventStore, type_name: str) -> list[eb.RecordedEvent]:
    return [e for e in store.read_all() if e.type == type_name]


def test_orders_are_approved_or_rejected_and_a_cancellation_gives_credit_back(
    engine: eb.Engine,
) -> None:
    runner = eb.SagaRunner(engine, shop.order_saga)
    order(engine, "o1", 300)
    order(engine, "o2", 900)
    runner.run_until_idle()
    assert status(engine, "o1") == "APPROVED"
    assert status(engine, "o2") == "REJECTED"
    assert engine.state("order-o2").state.reason == "credit limit exceeded"
    assert reserved(engine) == {"o1": 300}
    engine.execute(shop.CancelOrder(order_id="o1"))
    runner.run_until_idle()
    assert reserved(engine) == {}
    assert sagas(engine.store) == {"order-o1": "compensated", "order-o2": "completed"}
    # the saga's commands carry deterministic ids: saga stream / version / index
    ids = [e.metadata["command"]["id"] for e in events_of_type(engine.store, "CreditReserved")]
    assert ids == ["saga_order-o1/1/0"]
    assert runner.run_until_idle() == 0, "nothing left to do"


def test_a_restarted_runner_carries_on_without_doing_anything_twice(engine: eb.Engine) -> None:
    order(engine, "o1", 300)
    first = eb.SagaRunner(engine, shop.order_saga)
    first.run_once()  # reacted to OrderCreated and sent ReserveCredit
    order(engine, "o2", 200)
    again = eb.SagaRunner(eb.Engine(shop.app, engine.store, clock=engine.clock), shop.order_saga)
    again.run_until_idle()
    assert (status(engine, "o1"), status(engine, "o2")) == ("APPROVED", "APPROVED")
    assert len(events_of_type(engine.store, "CreditReserved")) == 2
    assert len(events_of_type(engine.store, "OrderApproved")) == 2


def test_no_answer_by_the_deadline_rejects_and_a_late_answer_is_compensated(
    engine: eb.Engine, clock: Clock
) -> None:
    held: list[tuple[eb.Command, str]] = []

    def slow_customer_service(command: eb.Command, *, command_id: str) -> Any:
        if isinstance(command, shop.ReserveCredit):
            held.append((command, command_id))  # sent, but the answer is not back yet
            return None
        return engine.execute(command, command_id=command_id)

    runner = eb.SagaRunner(engine, shop.order_saga, execute=slow_customer_service)
    order(engine, "o1", 300)
    runner.run_until_idle()
    assert status(engine, "o1") == "PENDING" and len(held) == 1
    clock.now = T0 + shop.CREDIT_REPLY_TIMEOUT - timedelta(seconds=1)
    runner.run_until_idle()
    assert status(engine, "o1") == "PENDING", "the deadline is not there yet"
    clock.now = T0 + shop.CREDIT_REPLY_TIMEOUT
    runner.run_until_idle()
    assert status(engine, "o1") == "REJECTED"
    assert "no answer" in engine.state("order-o1").state.reason
    # the customer service answers at last: the credit it reserved is given back
    command, command_id = held.pop()
    engine.execute(command, command_id=command_id)
    runner.run_until_idle()
    assert status(engine, "o1") == "REJECTED" and reserved(engine) == {}
    assert sagas(engine.store) == {"order-o1": "compensated"}
    assert events_of_type(engine.store, "OrderApproved") == []
    clock.now += timedelta(days=1)
    assert runner.run_until_idle() == 0, "the timer fired once"


def test_an_answer_before_the_deadline_cancels_the_timer(engine: eb.Engine, clock: Clock) -> None:
    runner = eb.SagaRunner(engine, shop.order_saga)
    order(engine, "o1", 300)
    runner.run_until_idle()
    assert list_sagas(engine.store).__next__().timers == {}
    clock.now = T0 + timedelta(hours=1)
    assert runner.run_until_idle() == 0
    assert status(engine, "o1") == "APPROVED"


def failing(engine: eb.Engine, kind: type, times: int) -> Callable[..., Any]:
    """An execute that fails `times` times for commands of `kind` (a service that is down)."""
    failures = {"left": times}

    def execute(command: eb.Command, *, command_id: str) -> Any:
        if isinstance(command, kind) and failures["left"] > 0:
            failures["left"] -= 1
            raise eb.StoreUnavailable("customer service at 10.0.0.7:4222", "connection refused")
        return engine.execute(command, command_id=command_id)

    execute.failures = failures  # type: ignore[attr-defined]
    return execute


def test_a_command_is_retried_before_the_saga_hears_of_the_failure(engine: eb.Engine) -> None:
    runner = eb.SagaRunner(engine, shop.order_saga, execute=failing(engine, shop.ReserveCredit, 2))
    order(engine, "o1", 300)
    runner.run_until_idle()
    assert status(engine, "o1") == "APPROVED", "two failures, the third try worked"
    runner = eb.SagaRunner(engine, shop.order_saga, execute=failing(engine, shop.ReserveCredit, 3))
    order(engine, "o2", 300)
    runner.run_until_idle()
    assert status(engine, "o2") == "REJECTED"
    assert engine.state("order-o2").state.reason == "the credit check failed"
    assert reserved(engine) == {"o1": 300}


def test_a_failed_compensation_parks_the_saga_until_it_is_retried(engine: eb.Engine) -> None:
    runner = eb.SagaRunner(engine, shop.order_saga)
    order(engine, "o1", 300)
    runner.run_until_idle()
    execute = failing(engine, shop.ReleaseCredit, 10**6)
    runner = eb.SagaRunner(engine, shop.order_saga, execute=execute)
    engine.execute(shop.CancelOrder(order_id="o1"))
    runner.run_until_idle()
    assert sagas(engine.store) == {"order-o1": "parked"}
    summary, history = show_saga(engine.store, "order-o1")
    assert list(summary.parked) == ["saga_order-o1/4/0"]
    assert "connection refused" in summary.parked["saga_order-o1/4/0"]
    assert history[-1].type == "SagaParked"
    assert reserved(engine) == {"o1": 300}, "not compensated yet, and not lost"
    with pytest.raises(eb.StreamNotFound):
        retry_saga(engine.store, "order-o2")
    execute.failures["left"] = 0  # type: ignore[attr-defined]  # the service is back
    assert retry_saga(engine.store, "order-o1") == ["saga_order-o1/4/0"]
    runner.run_until_idle()
    assert reserved(engine) == {} and sagas(engine.store) == {"order-o1": "compensated"}
    with pytest.raises(eb.InvalidInput, match="not parked"):
        retry_saga(engine.store, "order-o1")


def test_two_runners_at_once_do_each_step_once(engine: eb.Engine) -> None:
    for i in range(20):
        order(engine, f"o{i}", 10)
    runners = [eb.SagaRunner(engine, shop.order_saga, batch_events=4) for _ in range(2)]
    errors: list[BaseException] = []

    def run(runner: eb.SagaRunner) -> None:
        try:
            for _ in range(200):
                runner.run_once()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    runners[0].run_until_idle()
    assert all(status(engine, f"o{i}") == "APPROVED" for i in range(20))
    assert len(events_of_type(engine.store, "CreditReserved")) == 20
    assert len(events_of_type(engine.store, "OrderApproved")) == 20
    reactions = events_of_type(engine.store, "SagaReacted")
    assert len(reactions) == 60, "three reactions per order, none twice"


def test_a_saga_must_be_well_formed(engine: eb.Engine) -> None:
    with pytest.raises(eb.InvalidInput, match="saga name"):
        eb.Saga("Order Saga", None, lambda e, r: None, lambda s, e, c: None)
    quiet = eb.Engine(
        eb.Application(
            "quiet", shop.app.deciders, shop.app.commands, shop.app.events, record_rejections=False
        ),
        engine.store,
    )
    with pytest.raises(eb.InvalidInput, match="record rejections"):
        eb.SagaRunner(quiet, shop.order_saga)
