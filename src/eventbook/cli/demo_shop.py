"""`eventbook demo shop`: seed 004's order saga on the embedded default (or --store URL).

A customer with a credit limit of 1000 orders 300 (credit reserved, order approved), then 900
(more than is left: the customer service records CreditLimitExceeded and the saga rejects the
order), then cancels the first order (the saga gives the credit back). After each step the
order saga runs until it has nothing to do, and the demo prints what it did. Every command
carries an id, so running it again on the same store writes nothing new.

Then the second example: a transfer between two banks that are two services with two stores
(in memory), linked through the in-process broker by the outbox relay and consumers: one
transfer credited, one refused by the receiving bank and refunded.
"""

from __future__ import annotations

import tempfile
from typing import Any

from rich.table import Table

import eventbook as eb
from eventbook.cli import output
from eventbook.cli.apps import remember_app
from eventbook.cli.stores import open_for_writing
from eventbook.examples import bank
from eventbook.examples import interbank as interbank_example
from eventbook.examples import shop as example
from eventbook.outbox import Consumer, MemoryBroker, MemoryCheckpoint, Relay
from eventbook.sagas.inspect import list_sagas
from eventbook.sagas.remote import CommandInbox, ReplyInbox

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
    interbank(console)


def interbank(console: Any) -> None:
    """The second example: two banks, two stores (in memory here), one saga, linked through
    the in-process broker by the outbox relay and consumers."""
    console.print(
        "\n[bold]two banks, two stores[/]: ann at bank A sends money to bank B; the transfer "
        "saga on A debits, B credits, and a credit B refuses is refunded"
    )
    a, b = eb.open_store("memory://"), eb.open_store("memory://")
    engine_a, engine_b = eb.Engine(interbank_example.app_a, a), eb.Engine(bank.app, b)
    engine_a.execute(bank.OpenAccount(account_id="ann"))
    engine_a.execute(bank.Deposit(account_id="ann", amount=1000))
    engine_b.execute(bank.OpenAccount(account_id="bob"))
    runner = eb.SagaRunner(engine_a, interbank_example.interbank_saga)
    inbox_b = CommandInbox(engine_b, "bank-b")
    replies_a = ReplyInbox(engine_a, interbank_example.reply, engine_b.decoder.decode)
    broker_a, broker_b = MemoryBroker(subject_prefix="banka"), MemoryBroker(subject_prefix="bankb")
    with tempfile.TemporaryDirectory(prefix="eventbook-demo-link-") as folder:
        relay_a = Relay(a, broker_a, MemoryCheckpoint())
        relay_b = Relay(b, broker_b, MemoryCheckpoint())
        to_b = Consumer(
            broker_a,
            "bank-b",
            inbox_b.handle,
            f"{folder}/b.sqlite",
            workers=1,
            categories=["saga_interbank"],
        )
        to_a = Consumer(
            broker_b,
            "bank-a",
            replies_a.handle,
            f"{folder}/a.sqlite",
            workers=1,
            categories=["account", "$rejected"],
        )
        for tid, target, amount in (("t1", "bob", 300), ("t2", "nobody", 200)):
            engine_a.execute(
                interbank_example.SendInterbank(
                    transfer_id=tid,
                    from_account="ann",
                    to_bank="bank-b",
                    to_account=target,
                    amount=amount,
                )
            )
            for _ in range(20):
                moved = runner.run_until_idle() + relay_a.catch_up() + relay_b.catch_up()
                moved += to_b.run_once(0.01) + to_a.run_once(0.01)
                if not moved:
                    break
            status = engine_a.state(f"interbank-{tid}").state.status
            console.print(f"  {tid}: {amount} from ann (bank A) to {target} (bank B): {status}")
        to_a.close()
        to_b.close()
    ann = engine_a.state("account-ann").state.balance
    bob = engine_b.state("account-bob").state.balance
    console.print(f"  balances: ann {ann} at bank A, bob {bob} at bank B; together {ann + bob}")


def _orders(engine: eb.Engine) -> Table:
    table = Table(title="orders", title_justify="left")
    for column in ("order", "total", "status", "reason"):
        table.add_column(column, justify="right" if column == "total" else "left")
    for order_id in ("o1", "o2"):
        order = engine.state(f"order-{order_id}").state
        table.add_row(order_id, str(order.total), order.status, order.reason)
    return table
