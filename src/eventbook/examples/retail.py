"""The retailer of seed 000: stores record their sales, and a store-sales table sums them by day.

Online sales are recorded as they happen; a store uploads yesterday's sales the next night, so
each sale carries when it happened (`occurred_at`, given with the command) apart from when it
was recorded. The `store_sales` projection sums sales by store and by the (UTC) day they
happened. The `books` keep the sales bitemporally (`eb.Books`, docs/temporal.md): by business
day in Taipei, closed 72 hours after the day ends, with correction notices when a late upload
changes a day already reported. `FIRST_STORY` and `WEEK_STORY` are seed 000's two timelines;
`eventbook demo retail` plays them.

    export EVENTBOOK_APP=eventbook.examples.retail:app
    eventbook --store ./shops run RecordSale '{"store_id":"s1","amount":1250}' --id sale-1 \\
        --occurred-at 2026-11-24T18:30:00Z
    eventbook --store ./shops projections run
    sqlite3 ./shops/read_models.sqlite 'SELECT * FROM store_sales'

A sale's id is its command id (`--id`), so an upload sent twice records each sale once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

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

# The books of seed 000: sales by the business day in Taipei; a day closes 72 hours after it
# ends; an occurred time more than 5 minutes ahead of the clock, or before 2020, is refused.
calendar = eb.Calendar(
    tz="Asia/Taipei",
    period="day",
    max_lateness=timedelta(hours=72),
    skew=timedelta(minutes=5),
    horizon=datetime(2020, 1, 1, tzinfo=UTC),
)
books = eb.Books(eb.Measure("sales", handles=["SaleRecorded"], value="amount"), calendar)

app = eb.Application(
    name="retail",
    deciders=[stores],
    commands=[RecordSale],
    events=[SaleRecorded],
    projections=[store_sales, books.projection],
    occurred_at_check=calendar.check_occurred_at,  # through the engine, the CLI and HTTP too
)

TAIPEI = ZoneInfo("Asia/Taipei")


def taipei(day: str, hour: int, minute: int = 0) -> datetime:
    """An instant given as a Taipei wall-clock time (`2026-11-24`, 9)."""
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=TAIPEI)


@dataclass(frozen=True)
class Step:
    """One moment of a story: when it is (the clock), what happens, and the sale recorded
    then, if any (`store_id`, `amount`, when it happened)."""

    at: datetime
    title: str
    sale: tuple[str, int, datetime] | None = None
    sale_id: str | None = None


DAY = "2026-11-24"  # the first story's sales day (a Tuesday)

FIRST_STORY = [
    Step(taipei(DAY, 9), "09:00 C buys 2,000 in the shop (the shop uploads at night)"),
    Step(taipei(DAY, 10), "10:00 A orders 1,000 online", ("online", 1000, taipei(DAY, 10)), "a"),
    Step(taipei(DAY, 12), "12:00 B orders 1,200 online", ("online", 1200, taipei(DAY, 12)), "b"),
    Step(taipei(DAY, 21), "21:00 the shop counts its stock"),
    Step(taipei("2026-11-25", 0), "00:00 the day ends: its figure is published"),
    Step(
        taipei("2026-11-25", 2),
        "02:00 the shop uploads yesterday: (09:00, C, 2,000)",
        ("shop-1", 2000, taipei(DAY, 9)),
        "c",
    ),
    Step(taipei("2026-11-28", 0), "72 hours after the day ended: it closes"),
]

WEEK = ("2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04", "2026-12-05")

WEEK_STORY = [
    Step(
        taipei(WEEK[0], 9),
        "Mon: a new shop opens; online sells 1,000,000",
        ("online", 1_000_000, taipei(WEEK[0], 9)),
        "w-mon",
    ),
    Step(
        taipei(WEEK[1], 9),
        "Tue: 'yesterday (Mon) we sold 1,000,000'; online sells 1,200,000",
        ("online", 1_200_000, taipei(WEEK[1], 9)),
        "w-tue",
    ),
    Step(
        taipei(WEEK[2], 9),
        "Wed: 'yesterday (Tue) we sold 1,200,000'; online sells 1,100,000",
        ("online", 1_100_000, taipei(WEEK[2], 9)),
        "w-wed",
    ),
    Step(
        taipei(WEEK[3], 9),
        "Thu: 'yesterday (Wed) 1,100,000'; the new shop settles Monday: 3,500,000",
        ("shop-2", 3_500_000, taipei(WEEK[0], 20)),
        "w-shop-mon",
    ),
    Step(taipei(WEEK[4], 9), "Fri: Monday closed (72 hours after it ended)"),
    Step(
        taipei(WEEK[5], 9),
        "Sat: a forgotten Monday receipt of 50,000 from the shop",
        ("shop-2", 50_000, taipei(WEEK[0], 21)),
        "w-shop-late",
    ),
]


def record(engine: eb.Engine, step: Step) -> eb.Outcome | None:
    """Record a step's sale through the books' occurred-time rule (None if it has none)."""
    if step.sale is None:
        return None
    store_id, amount, happened = step.sale
    return books.execute(
        engine,
        RecordSale(store_id=store_id, amount=amount),
        occurred_at=happened,
        command_id=f"sale-{step.sale_id}",
    )
