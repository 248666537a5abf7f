"""The shop of seed 004: customers with a credit limit, and orders approved against it.

Run it from the command line::

    export EVENTBOOK_APP=eventbook.examples.shop:app
    eventbook --store ./shop run RegisterCustomer '{"customer_id":"c1","credit_limit":1000}'
    eventbook --store ./shop run CreateOrder \
        '{"order_id":"o1","customer_id":"c1","total":300,"note":"gift wrap, please"}'
    eventbook --store ./shop run ReserveCredit '{"customer_id":"c1","order_id":"o1","amount":300}'
    eventbook --store ./shop run ApproveOrder '{"order_id":"o1"}'
    eventbook --store ./shop state customer-c1 --json
    eventbook --store ./shop history order-o1
    eventbook --store ./shop projections run

Two deciders, one per aggregate, and every command changes one aggregate (seed 004): an order
(`order-{id}`) is created PENDING, then approved or rejected, and may be cancelled; a customer
(`customer-{id}`) reserves credit for orders up to its limit. A reservation over the limit is
not a rejected command but a fact, `CreditLimitExceeded`, which the order saga reacts to by
rejecting the order (as it reacts to `CreditReserved` by approving it, and to a cancelled order
by releasing its credit). Amounts are integers (cents): money is never a float.

The query side: `orders_by_customer` (a SQLite table of every order with its customer and
status) and `order_notes` (SQLite FTS5 full-text search over the orders' notes, searched with
`eventbook.read_models.fts.search`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

import msgspec

import eventbook as eb

Amount = Annotated[int, msgspec.Meta(gt=0, le=10**15)]
Limit = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
# 50 characters: a stream id (`customer-{id}`) and its rejections' (`$rejected-customer-{id}`)
# stay within the store's 255 UTF-8 bytes whatever the characters.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=r"^[^\s$]+$")]
Reason = Annotated[str, msgspec.Meta(max_length=1000)]
Note = Annotated[str, msgspec.Meta(max_length=1000)]


def customer_stream(customer_id: str) -> str:
    return f"customer-{customer_id}"


def order_stream(order_id: str) -> str:
    return f"order-{order_id}"


# -- commands (imperative) ---------------------------------------------------------------------


class RegisterCustomer(eb.Command, tag="RegisterCustomer"):
    customer_id: Id
    credit_limit: Limit

    def streams(self) -> tuple[str, ...]:
        return (customer_stream(self.customer_id),)


class CreateOrder(eb.Command, tag="CreateOrder"):
    order_id: Id
    customer_id: Id
    total: Amount
    note: Note = ""  # free text from the customer, searchable (the order_notes projection)

    def streams(self) -> tuple[str, ...]:
        # the customer is read (it must exist) but not written
        return (order_stream(self.order_id), customer_stream(self.customer_id))


class ReserveCredit(eb.Command, tag="ReserveCredit"):
    customer_id: Id
    order_id: Id
    amount: Amount

    def streams(self) -> tuple[str, ...]:
        return (customer_stream(self.customer_id),)


class ReleaseCredit(eb.Command, tag="ReleaseCredit"):
    customer_id: Id
    order_id: Id

    def streams(self) -> tuple[str, ...]:
        return (customer_stream(self.customer_id),)


class ApproveOrder(eb.Command, tag="ApproveOrder"):
    order_id: Id

    def streams(self) -> tuple[str, ...]:
        return (order_stream(self.order_id),)


class RejectOrder(eb.Command, tag="RejectOrder"):
    order_id: Id
    reason: Reason = ""

    def streams(self) -> tuple[str, ...]:
        return (order_stream(self.order_id),)


class CancelOrder(eb.Command, tag="CancelOrder"):
    order_id: Id

    def streams(self) -> tuple[str, ...]:
        return (order_stream(self.order_id),)


# -- events (past tense) -----------------------------------------------------------------------


class CustomerRegistered(eb.Event, tag="CustomerRegistered"):
    customer_id: str
    credit_limit: int


class CreditReserved(eb.Event, tag="CreditReserved"):
    order_id: str
    amount: int


class CreditLimitExceeded(eb.Event, tag="CreditLimitExceeded"):
    order_id: str
    amount: int
    available: int  # the credit that was available when the reservation was refused


class CreditReleased(eb.Event, tag="CreditReleased"):
    order_id: str
    amount: int


class OrderCreated(eb.Event, tag="OrderCreated"):
    order_id: str
    customer_id: str
    total: int
    note: str = ""  # added later: events stored without it read as ""


class OrderApproved(eb.Event, tag="OrderApproved"):
    pass


class OrderRejected(eb.Event, tag="OrderRejected"):
    reason: str = ""


class OrderCancelled(eb.Event, tag="OrderCancelled"):
    pass


# -- state -------------------------------------------------------------------------------------

OrderStatus = Literal["NONE", "PENDING", "APPROVED", "REJECTED", "CANCELLED"]


class Customer(msgspec.Struct, frozen=True):
    customer_id: str = ""
    registered: bool = False
    credit_limit: int = 0
    reservations: dict[str, int] = msgspec.field(default_factory=dict)  # order id -> amount

    @property
    def reserved(self) -> int:
        return sum(self.reservations.values())

    @property
    def available_credit(self) -> int:
        return self.credit_limit - self.reserved


class Order(msgspec.Struct, frozen=True):
    order_id: str = ""
    customer_id: str = ""
    total: int = 0
    status: OrderStatus = "NONE"
    reason: str = ""


def evolve_customer(state: Customer, event: eb.Event) -> Customer:
    match event:
        case CustomerRegistered(customer_id=customer_id, credit_limit=limit):
            return Customer(customer_id, True, limit, {})
        case CreditReserved(order_id=order_id, amount=amount):
            reservations = {**state.reservations, order_id: amount}
            return msgspec.structs.replace(state, reservations=reservations)
        case CreditReleased(order_id=order_id):
            reservations = {k: v for k, v in state.reservations.items() if k != order_id}
            return msgspec.structs.replace(state, reservations=reservations)
    return state  # CreditLimitExceeded changes nothing: it records a refusal


def decide_customer(command: eb.Command, state: Customer, ctx: eb.Context) -> eb.Decision:
    match command:
        case RegisterCustomer(customer_id=customer_id, credit_limit=limit):
            if state.registered:
                return eb.Rejected("customer_exists", f"customer {customer_id} is registered")
            return [CustomerRegistered(customer_id=customer_id, credit_limit=limit)]
    if not state.registered:
        customer = getattr(command, "customer_id", "?")
        return eb.Rejected("no_such_customer", f"customer {customer} is not registered")
    match command:
        case ReserveCredit(order_id=order_id, amount=amount):
            if order_id in state.reservations:
                return eb.Rejected(
                    "credit_already_reserved",
                    f"{state.reservations[order_id]} is already reserved for order {order_id}",
                )
            available = state.available_credit
            if amount > available:
                return [CreditLimitExceeded(order_id=order_id, amount=amount, available=available)]
            return [CreditReserved(order_id=order_id, amount=amount)]
        case ReleaseCredit(order_id=order_id):
            amount = state.reservations.get(order_id)
            if amount is None:
                return eb.Rejected(
                    "no_such_reservation", f"no credit is reserved for order {order_id}"
                )
            return [CreditReleased(order_id=order_id, amount=amount)]
    return eb.Rejected("unknown_command", type(command).__name__)


def evolve_order(state: Order, event: eb.Event) -> Order:
    match event:
        case OrderCreated(order_id=order_id, customer_id=customer_id, total=total):
            return Order(order_id, customer_id, total, "PENDING")
        case OrderApproved():
            return msgspec.structs.replace(state, status="APPROVED")
        case OrderRejected(reason=reason):
            return msgspec.structs.replace(state, status="REJECTED", reason=reason)
        case OrderCancelled():
            return msgspec.structs.replace(state, status="CANCELLED")
    return state


def decide_order(command: eb.Command, state: Order, ctx: eb.Context) -> eb.Decision:
    match command:
        case CreateOrder(order_id=order_id, customer_id=customer_id, total=total, note=note):
            if state.status != "NONE":
                return eb.Rejected("order_exists", f"order {order_id} exists ({state.status})")
            if not ctx.state(customer_stream(customer_id)).registered:
                return eb.Rejected("no_such_customer", f"customer {customer_id} is not registered")
            return [
                OrderCreated(order_id=order_id, customer_id=customer_id, total=total, note=note)
            ]
    order_id = getattr(command, "order_id", "?")
    if state.status == "NONE":
        return eb.Rejected("no_such_order", f"order {order_id} does not exist")
    match command:
        case ApproveOrder():
            if state.status != "PENDING":
                return eb.Rejected("order_not_pending", f"order {order_id} is {state.status}")
            return [OrderApproved()]
        case RejectOrder(reason=reason):
            if state.status != "PENDING":
                return eb.Rejected("order_not_pending", f"order {order_id} is {state.status}")
            return [OrderRejected(reason=reason)]
        case CancelOrder():
            if state.status not in ("PENDING", "APPROVED"):
                return eb.Rejected(
                    "order_not_cancellable",
                    f"order {order_id} is {state.status}; only pending or approved orders "
                    "can be cancelled",
                )
            return [OrderCancelled()]
    return eb.Rejected("unknown_command", type(command).__name__)


customers = eb.Decider(
    category="customer",
    initial_state=Customer(),
    decide=decide_customer,
    evolve=evolve_customer,
    version="1",
    describe=lambda c: f"free {c.available_credit} of {c.credit_limit}",
)

orders = eb.Decider(
    category="order",
    initial_state=Order(),
    decide=decide_order,
    evolve=evolve_order,
    version="1",
    describe=lambda order: f"{order.status.lower()} {order.total}",
)

# -- projections (the query side) --------------------------------------------------------------

ORDER_EVENTS = ["OrderCreated", "OrderApproved", "OrderRejected", "OrderCancelled"]
ORDER_STATUS = {
    "OrderApproved": "APPROVED",
    "OrderRejected": "REJECTED",
    "OrderCancelled": "CANCELLED",
}


def _order_of(recorded: eb.RecordedEvent) -> str:
    return recorded.stream.removeprefix("order-")


@eb.projection(
    "orders_by_customer",
    handles=ORDER_EVENTS,
    tables={
        "orders_by_customer": "order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, "
        "total INTEGER NOT NULL, status TEXT NOT NULL, note TEXT NOT NULL, "
        "position INTEGER NOT NULL"
    },
    setup=lambda tx: tx.execute(
        "CREATE INDEX {orders_by_customer}_customer ON {orders_by_customer} (customer_id)"
    ),
)
def orders_by_customer(tx, event: eb.Event, recorded: eb.RecordedEvent) -> None:
    """Every order with its customer and status (PENDING, APPROVED, REJECTED, CANCELLED, as
    the order's state), by customer: `SELECT ... FROM orders_by_customer WHERE customer_id=?`.
    `position` is the last event that changed the row."""
    if isinstance(event, OrderCreated):
        tx.execute(
            "INSERT INTO {orders_by_customer} VALUES (?, ?, ?, 'PENDING', ?, ?)",
            (event.order_id, event.customer_id, event.total, event.note, recorded.position),
        )
        return
    tx.execute(
        "UPDATE {orders_by_customer} SET status = ?, position = ? WHERE order_id = ?",
        (ORDER_STATUS[recorded.type], recorded.position, _order_of(recorded)),
    )


@eb.projection(
    "order_notes",
    target="fts",
    handles=["OrderCreated"],
    tables={"order_notes": "fts5(note, order_id UNINDEXED, customer_id UNINDEXED)"},
)
def order_notes(tx, event: eb.Event, recorded: eb.RecordedEvent) -> None:
    """Full-text search over order notes (SQLite FTS5), one row per order that has a note::

    eventbook.read_models.fts.search(model, "order_notes", "order_notes", "gift wrap*")
    """
    if isinstance(event, OrderCreated) and event.note.strip():
        tx.execute(
            "INSERT INTO {order_notes} (note, order_id, customer_id) VALUES (?, ?, ?)",
            (event.note, event.order_id, event.customer_id),
        )


# -- the order saga (seed 004): credit reserved -> approved; limit exceeded -> rejected --------

CREDIT_REPLY_TIMEOUT = timedelta(seconds=30)


class OrderSagaState(msgspec.Struct, frozen=True):
    order_id: str = ""
    customer_id: str = ""
    total: int = 0
    step: str = "new"  # reserving, approving, approved, rejecting, rejected, cancelled
    reserved: bool = False  # credit is held for this order, as far as the saga knows


def correlate_order(event: eb.Event, recorded: eb.RecordedEvent) -> str | None:
    """The saga of an order follows the order's own events (the outcomes of the commands it
    issues come to it without correlation)."""
    if recorded.stream.startswith("order-") and isinstance(event, OrderCreated | OrderCancelled):
        return _order_of(recorded)
    return None


def react_order(state: OrderSagaState, event: eb.Event, ctx: eb.SagaContext) -> eb.Reaction | None:
    """Seed 004's flow, with a deadline for the customer service's answer and compensation."""
    s = msgspec.structs.replace
    release = ReleaseCredit(customer_id=state.customer_id, order_id=state.order_id)
    match event:
        case OrderCreated(order_id=order_id, customer_id=customer_id, total=total):
            if state.step != "new":
                return None
            return eb.Reaction(
                OrderSagaState(order_id, customer_id, total, "reserving"),
                commands=[ReserveCredit(customer_id=customer_id, order_id=order_id, amount=total)],
                timers=[eb.Timer("credit_reply", ctx.now + CREDIT_REPLY_TIMEOUT)],
            )
        case CreditReserved() if ctx.issued_by_me:
            if state.step == "reserving":
                return eb.Reaction(
                    s(state, step="approving", reserved=True),
                    commands=[ApproveOrder(order_id=state.order_id)],
                    cancel=["credit_reply"],
                )
            # a late answer, after the deadline or a cancellation: give the credit back
            return eb.Reaction(s(state, reserved=True), compensations=[release])
        case CreditLimitExceeded() if ctx.issued_by_me and state.step == "reserving":
            return eb.Reaction(
                s(state, step="rejecting"),
                commands=[RejectOrder(order_id=state.order_id, reason="credit limit exceeded")],
                cancel=["credit_reply"],
            )
        case eb.TimerFired(name="credit_reply") if state.step == "reserving":
            reason = f"no answer from the credit check in {CREDIT_REPLY_TIMEOUT.seconds} s"
            return eb.Reaction(
                s(state, step="rejecting"),
                commands=[RejectOrder(order_id=state.order_id, reason=reason)],
            )
        case OrderApproved() if ctx.issued_by_me:
            return eb.Reaction(s(state, step="approved"), status="completed")
        case OrderRejected() if ctx.issued_by_me:
            return eb.Reaction(
                s(state, step="rejected"), status="running" if state.reserved else "completed"
            )
        case OrderCancelled():
            if state.reserved:
                return eb.Reaction(s(state, step="cancelled"), compensations=[release])
            return eb.Reaction(s(state, step="cancelled"), status="completed")
        case CreditReleased() if ctx.issued_by_me:
            return eb.Reaction(s(state, reserved=False), status="compensated")
        case eb.CommandRejected(command="ReleaseCredit", code="no_such_reservation"):
            return eb.Reaction(s(state, reserved=False), status="compensated")
        case eb.CommandRejected(command="ApproveOrder") if state.reserved:
            # the order changed meanwhile (cancelled by the customer): undo the reservation
            return eb.Reaction(s(state, step="cancelled"), compensations=[release])
        case eb.DispatchFailed(command="ReserveCredit" | "ApproveOrder"):
            return eb.Reaction(
                s(state, step="rejecting"),
                commands=[RejectOrder(order_id=state.order_id, reason="the credit check failed")],
                compensations=[release] if state.reserved else [],
            )
    return None


order_saga = eb.Saga(
    name="order",
    initial_state=OrderSagaState(),
    correlate=correlate_order,
    react=react_order,
    retry_attempts=3,
)

app = eb.Application(
    name="shop",
    deciders=[customers, orders],
    commands=[
        RegisterCustomer,
        CreateOrder,
        ReserveCredit,
        ReleaseCredit,
        ApproveOrder,
        RejectOrder,
        CancelOrder,
    ],
    events=[
        CustomerRegistered,
        CreditReserved,
        CreditLimitExceeded,
        CreditReleased,
        OrderCreated,
        OrderApproved,
        OrderRejected,
        OrderCancelled,
    ],
    snapshot_every=100,
    record_rejections=True,
    projections=[orders_by_customer, order_notes],
    sagas=[order_saga],
)
