"""The retailer of seed 000: stores record their sales, and a store-sales table sums them by day.

Online sales are recorded as they happen; a store uploads yesterday's sales the next night, so
each sale carries when it happened (`occurred_at`, given with the command) apart from when it
was recorded. The `store_sales` projection sums sales by store and by the day they happened
(UTC here; business time zones, period close and correction notices come with the bitemporal
reports).

    export EVENTBOOK_APP=eventbook.examples.retail:app
    eventbook --store ./shops run RecordSale '{"store_id":"s1","amount":1250}' --id sale-1 \\
        --occurred-at 2026-11-24T18:30:00Z
    eventbook --store ./shops projections run
    sqlite3 ./shops/read_models.sqlite 'SELECT * FROM store_sales'

A sale's id is its command id (`--id`), so an upload sent twice records each sale once.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

import eventbook as eb

StoreId = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\s$]+$")]
Cents = Annotated[int, msgspec.Meta(gt=0, le=10**12)]


class RecordSale(eb.Command, tag="RecordSale"):
    store_id: StoreId
    amount: Cents

    def streams(self) -> tuple[str, ...]:
        return (f"store-{self.store_id}",)


class SaleRecorded(eb.Event, tag="SaleRecorded"):
    store_id: str
    amount: int


class Store(msgspec.Struct, frozen=True):
    sales: int = 0
    total: int = 0


def decide(command: eb.Command, state: Store, ctx: eb.Context) -> eb.Decision:
    match command:
        case RecordSale(store_id=store_id, amount=amount):
            return [SaleRecorded(store_id=store_id, amount=amount)]
    return eb.Rejected("unknown_command", type(command).__name__)


def evolve(state: Store, event: eb.Event) -> Store:
    match event:
        case SaleRecorded(amount=amount):
            return Store(state.sales + 1, state.total + amount)
    return state


@eb.projection(
    "store_sales",
    handles=["SaleRecorded"],
    tables={
        "store_sales": "store_id TEXT NOT NULL, day TEXT NOT NULL, total INTEGER NOT NULL, "
        "sales INTEGER NOT NULL, PRIMARY KEY (store_id, day)"
    },
)
def store_sales(tx, event: SaleRecorded, recorded: eb.RecordedEvent) -> None:
    """Sales by store and by the (UTC) day they happened: a late upload lands on its day."""
    tx.execute(
        "INSERT INTO {store_sales} VALUES (?, ?, ?, 1) ON CONFLICT (store_id, day) "
        "DO UPDATE SET total = total + excluded.total, sales = sales + 1",
        (event.store_id, recorded.occurred_at.date().isoformat(), event.amount),
    )


stores = eb.Decider(
    category="store",
    initial_state=Store(),
    decide=decide,
    evolve=evolve,
    describe=lambda s: f"{s.sales} sales, {s.total} cents",
)

app = eb.Application(
    name="retail",
    deciders=[stores],
    commands=[RecordSale],
    events=[SaleRecorded],
    projections=[store_sales],
)
