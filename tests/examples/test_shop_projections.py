"""The shop's query side: orders by customer (SQLite) and full-text search over order notes
(SQLite FTS5), kept by the projection runner on the memory store and on the embedded log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import eventbook as eb
from eventbook.engine.codec import parse_command
from eventbook.examples import shop
from eventbook.examples.shop import (
    ApproveOrder,
    CancelOrder,
    CreateOrder,
    RegisterCustomer,
    RejectOrder,
)
from eventbook.read_models import open_read_models
from eventbook.read_models.fts import search
from eventbook.read_models.sqlite import SqliteReadModel

NOTES = {
    "o1": ("c1", 300, "Please gift wrap the blue widget"),
    "o2": ("c1", 120, "Leave at the back door"),
    "o3": ("c2", 50, "widgets x3, deliver before noon"),
    "o4": ("c2", 80, ""),
}


@pytest.fixture(params=["memory", "log"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[eb.EventStore]:
    url = "memory://" if request.param == "memory" else str(tmp_path / "shop")
    opened = eb.open_store(url)
    yield opened
    opened.close()


@pytest.fixture
def engine(store: eb.EventStore) -> eb.Engine:
    return eb.Engine(shop.app, store)


@pytest.fixture
def models(store: eb.EventStore) -> Iterator[dict]:
    opened = open_read_models(store, {"sqlite", "fts"})
    yield opened
    opened["sqlite"].close()


@pytest.fixture
def model(models: dict) -> SqliteReadModel:
    return models["sqlite"]


@pytest.fixture
def runner(store: eb.EventStore, models: dict) -> eb.ProjectionRunner:
    return eb.ProjectionRunner(store, shop.app, models)


def ok(engine: eb.Engine, command: eb.Command) -> eb.Outcome:
    outcome = engine.execute(command)
    assert outcome.accepted, outcome.rejection
    return outcome


def open_shop(engine: eb.Engine) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=1000))
    ok(engine, RegisterCustomer(customer_id="c2", credit_limit=1000))
    for order_id, (customer_id, total, note) in NOTES.items():
        ok(engine, CreateOrder(order_id=order_id, customer_id=customer_id, total=total, note=note))


def orders_of(model: SqliteReadModel, customer_id: str) -> list[tuple]:
    return model.query(
        "SELECT order_id, total, status, note FROM orders_by_customer WHERE customer_id = ? "
        "ORDER BY order_id",
        (customer_id,),
    )


def found(model: SqliteReadModel, query: str) -> list[str]:
    """The order ids whose notes match, best first."""
    return [row[1] for row in search(model, "order_notes", "order_notes", query)]


def test_the_shop_declares_its_projections() -> None:
    assert [(p.name, p.target) for p in shop.app.projections] == [
        ("orders_by_customer", "sqlite"),
        ("order_notes", "fts"),
    ]


def test_orders_by_customer_follow_each_order_status(
    engine: eb.Engine, runner: eb.ProjectionRunner, model: SqliteReadModel
) -> None:
    open_shop(engine)
    runner.catch_up()
    assert orders_of(model, "c1") == [
        ("o1", 300, "PENDING", "Please gift wrap the blue widget"),
        ("o2", 120, "PENDING", "Leave at the back door"),
    ]
    approved = ok(engine, ApproveOrder(order_id="o1"))
    ok(engine, RejectOrder(order_id="o2", reason="out of stock"))
    ok(engine, ApproveOrder(order_id="o3"))
    cancelled = ok(engine, CancelOrder(order_id="o3"))
    runner.catch_up()
    assert [row[:3] for row in orders_of(model, "c1")] == [
        ("o1", 300, "APPROVED"),
        ("o2", 120, "REJECTED"),
    ]
    assert [row[:3] for row in orders_of(model, "c2")] == [
        ("o3", 50, "CANCELLED"),
        ("o4", 80, "PENDING"),
    ]
    positions = dict(model.query("SELECT order_id, position FROM orders_by_customer"))
    assert positions["o1"] == approved.position and positions["o3"] == cancelled.position
    for order_id in NOTES:  # the view says what the order's state says
        state = engine.state(f"order-{order_id}").state
        [(status,)] = model.query(
            "SELECT status FROM orders_by_customer WHERE order_id = ?", (order_id,)
        )
        assert status == state.status
    assert [s.lag for s in runner.status()] == [0, 0]


def test_order_notes_are_searched_by_words_and_prefixes(
    engine: eb.Engine, runner: eb.ProjectionRunner, model: SqliteReadModel
) -> None:
    open_shop(engine)
    runner.catch_up()
    assert found(model, "widget") == ["o1"]
    assert sorted(found(model, "wid*")) == ["o1", "o3"]
    assert found(model, "gift wrap") == ["o1"]
    assert found(model, '"back door"') == ["o2"]
    assert sorted(found(model, "door OR noon")) == ["o2", "o3"]
    assert found(model, "c1") == []  # customer and order ids are stored, not indexed
    [row] = search(model, "order_notes", "order_notes", "noon")
    assert row == ("widgets x3, deliver before noon", "o3", "c2")  # (note, order_id, customer)
    # an order without a note has no row
    assert model.query("SELECT count(*) FROM order_notes") == [(3,)]
    # the view can be matched by its note column, and joined with the orders
    joined = model.query(
        "SELECT o.order_id, o.status FROM order_notes n JOIN orders_by_customer o "
        "USING (order_id) WHERE n.note MATCH ? ORDER BY o.order_id",
        ("wid*",),
    )
    assert joined == [("o1", "PENDING"), ("o3", "PENDING")]


def test_status_changes_are_visible_to_a_reader_that_waits(
    engine: eb.Engine, runner: eb.ProjectionRunner, model: SqliteReadModel
) -> None:
    runner.start(poll_seconds=0.01)
    try:
        open_shop(engine)
        rejected = ok(engine, RejectOrder(order_id="o1", reason="no stock"))
        runner.wait_for(rejected.position, timeout=10)  # read-your-writes
        assert orders_of(model, "c1")[0][:3] == ("o1", 300, "REJECTED")
        assert found(model, "gift") == ["o1"]
    finally:
        runner.stop()


def test_a_rebuild_keeps_search_working(
    engine: eb.Engine, store: eb.EventStore, models: dict, model: SqliteReadModel
) -> None:
    open_shop(engine)
    ok(engine, ApproveOrder(order_id="o1"))
    runner = eb.ProjectionRunner(store, shop.app, models, batch_events=2)
    runner.catch_up()
    before = (found(model, "wid*"), orders_of(model, "c1"), orders_of(model, "c2"))
    during: list[list[str]] = []
    runner.rebuild(
        "order_notes", progress=lambda position, head: during.append(found(model, "wid*"))
    )
    runner.rebuild("orders_by_customer")
    assert during and all(sorted(ids) == ["o1", "o3"] for ids in during)
    assert (found(model, "wid*"), orders_of(model, "c1"), orders_of(model, "c2")) == before
    assert {s.name: s.status for s in runner.status()} == {
        "orders_by_customer": "running",
        "order_notes": "running",
    }
    ok(engine, CreateOrder(order_id="o5", customer_id="c1", total=10, note="one more widget"))
    runner.catch_up()
    assert sorted(found(model, "wid*")) == ["o1", "o3", "o5"]


def test_a_bad_query_is_invalid_input(
    engine: eb.Engine, runner: eb.ProjectionRunner, model: SqliteReadModel
) -> None:
    open_shop(engine)
    runner.catch_up()
    for query in ['"gift wrap', "widget AND", "colour: blue", ""]:
        with pytest.raises(eb.InvalidInput):
            found(model, query)
    assert found(model, "widget") == ["o1"]


def test_orders_created_before_notes_existed_still_read(
    engine: eb.Engine, store: eb.EventStore, runner: eb.ProjectionRunner, model: SqliteReadModel
) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=1000))
    # an OrderCreated as stored before `note` was added: no such field
    store.append(
        [
            eb.NewEvent(
                "order-old", "OrderCreated", {"order_id": "old", "customer_id": "c1", "total": 7}
            )
        ],
        expected={"order-old": eb.NO_STREAM},
    )
    assert engine.state("order-old").state == shop.Order("old", "c1", 7, "PENDING")
    ok(engine, ApproveOrder(order_id="old"))
    runner.catch_up()
    assert orders_of(model, "c1") == [("old", 7, "APPROVED", "")]
    assert model.query("SELECT count(*) FROM order_notes") == [(0,)]
    assert [s.status for s in runner.status()] == ["running", "running"]


def test_a_note_is_optional_and_bounded(engine: eb.Engine) -> None:
    ok(engine, RegisterCustomer(customer_id="c1", credit_limit=1000))
    [event] = ok(engine, CreateOrder(order_id="o1", customer_id="c1", total=5)).events
    assert event.data["note"] == ""
    parsed = parse_command(
        shop.app, "CreateOrder", {"order_id": "o2", "customer_id": "c1", "total": 5, "note": "hi"}
    )
    assert parsed.note == "hi"
    with pytest.raises(eb.InvalidInput, match="note"):
        parse_command(
            shop.app,
            "CreateOrder",
            {"order_id": "o3", "customer_id": "c1", "total": 5, "note": "x" * 1001},
        )
