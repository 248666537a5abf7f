"""`eventbook demo shop`: seed 004's order saga on the embedded default (or --store URL).

A customer with a credit limit of 1000 orders 300 (credit reserved, order approved), then 900
(more than is left: the customer service records CreditLimitExceeded and the saga rejects the
order), then cancels the first order (the saga gives the credit back). After each step the
order saga runs until it has nothing to do, and the demo prints what it did. Every command
carries an id, so running it again on the same store writes nothing new.
"""

from __future__ import annotations

from rich.table import Table

import eventbook as eb
from eventbook.cli import output
from eventbook.cli.apps import remember_app
from eventbook.cli.stores import open_for_writing
from eventbook.examples import shop as example
from eventbook.sagas.inspect import list_sagas

APP_PATH = "eventbook.examples.shop:app"

STORY: list[tuple[str, str, dict[str, object]]] = [
    (
        "c1 registers, credit limit 1000",
        "RegisterCustomer",
        {"customer_id": "c1", "credit_limit": 1000},
    ),
    (
        "c1 orders o1 for 300",
        "CreateOrder",
        {"order_id": "o1", "customer_id": "c1", "total": 300},
    ),
    (
        "c1 orders o2 for 900, more than is left",
        "CreateOrder",
        {"order_id": "o2", "customer_id": "c1", "total": 900},
    ),
    ("c1 cancels o1", "CancelOrder", {"order_id": "o1"}),
]


def shop(url: str) -> None:
    console = output.stdout_console()
    with open_for_writing(url) as book:
        remember_app(book, APP_PATH)
        engine = eb.Engine(example.app, book)
        runner = eb.SagaRunner(engine, example.order_saga)
        console.print(f"[bold]eventbook demo shop[/]: the order saga of seed 004 on {book.url}\n")
        for n, (title, command, data) in enumerate(STORY, 1):
            outcome = engine.run(command, data, command_id=f"shop-demo-{n}")
            verdict = "accepted" if outcome.accepted else f"rejected ({outcome.rejection})"
            console.print(f"[bold]{title}[/]: {command} {verdict}")
            before = book.head_position()
            runner.run_until_idle()
            for rec in book.read_all(after=before):
                if rec.type == "SagaReacted":
                    issued = ", ".join(c["type"] for c in rec.data["commands"]) or "nothing"
                    source = rec.data["input"].get("type") or "a timer"
                    console.print(
                        f"  saga {rec.stream.removeprefix('saga_')}: on {source}, issues "
                        f"{issued} ({rec.data['status']})"
                    )
                elif not rec.stream.startswith(("saga_", "sagacheckpoint-")):
                    console.print(f"  {rec.stream}: {rec.type}", style="dim")
        console.print()
        console.print(_orders(engine))
        customer = engine.state("customer-c1").state
        console.print(
            f"customer c1: credit limit {customer.credit_limit}, reserved {customer.reserved}, "
            f"available {customer.available_credit}"
        )
        sagas = list(list_sagas(book, "order"))
        console.print("sagas: " + ", ".join(f"{item.id} {item.status}" for item in sagas) + "\n")
        console.print(
            f"Try: eventbook --store {url} sagas list | sagas show order-o1 | "
            "history order-o1 | state customer-c1 --json"
        )


def _orders(engine: eb.Engine) -> Table:
    table = Table(title="orders", title_justify="left")
    for column in ("order", "total", "status", "reason"):
        table.add_column(column, justify="right" if column == "total" else "left")
    for order_id in ("o1", "o2"):
        order = engine.state(f"order-{order_id}").state
        table.add_row(order_id, str(order.total), order.status, order.reason)
    return table
