"""`eventbook demo`: a short tour of the store on the embedded default (seed 001's bank).

It uses the public API only, and its commits carry ids, so running it twice shows
idempotency: the second run writes nothing and gets the first results back.
"""

from __future__ import annotations

import typer
from rich.table import Table

import eventbook as eb
from eventbook.cli import output
from eventbook.cli.options import StoreOption
from eventbook.cli.stores import open_for_writing, store_url


def demo(ctx: typer.Context, store: StoreOption = None) -> None:
    """Run a short bank tour on the store: open accounts, deposit, transfer atomically,
    show a conflict and an idempotent retry, then print the passbooks and the log."""
    console = output.stdout_console()
    url = store_url(ctx, store)
    with open_for_writing(url) as book:
        console.print(f"[bold]eventbook demo[/] on {book.url}\n")
        steps = [
            (
                "open ada's account",
                [eb.NewEvent("account-ada", "AccountOpened", {"owner": "ada"})],
                {"account-ada": eb.NO_STREAM},
                "demo-open-ada",
            ),
            (
                "open bob's account",
                [eb.NewEvent("account-bob", "AccountOpened", {"owner": "bob"})],
                {"account-bob": eb.NO_STREAM},
                "demo-open-bob",
            ),
            (
                "ada deposits 100",
                [eb.NewEvent("account-ada", "Deposited", {"amount": 100})],
                {"account-ada": 1},
                "demo-deposit-1",
            ),
            (
                "ada transfers 30 to bob: one commit, two streams",
                [
                    eb.NewEvent("account-ada", "Withdrawn", {"amount": 30, "to": "account-bob"}),
                    eb.NewEvent("account-bob", "Deposited", {"amount": 30, "from": "account-ada"}),
                ],
                {"account-ada": 2, "account-bob": 1},
                "demo-transfer-1",
            ),
        ]
        for title, events, expected, commit_id in steps:
            r = book.append(events, expected=expected, commit_id=commit_id)
            console.print(
                f"  {title}: positions {r.first_position}..{r.last_position}, versions {r.versions}"
            )
        again = book.append(steps[3][1], expected=steps[3][2], commit_id="demo-transfer-1")
        console.print(
            f"  the same transfer again (same commit id): positions "
            f"{again.first_position}..{again.last_position}, nothing new written"
        )
        try:
            book.append(
                [eb.NewEvent("account-ada", "Withdrawn", {"amount": 500})],
                expected={"account-ada": 1},
            )
        except eb.WrongExpectedVersion as conflict:
            console.print(
                f"  a withdrawal decided on a stale balance is refused: "
                f"[yellow]{conflict.message}[/]"
            )
        console.print()
        for account in ("account-ada", "account-bob"):
            console.print(_passbook(book, account))
        console.print(
            f"\nThe global log holds {book.head_position()} events. Try: "
            f"eventbook --store {url} log | streams | verify"
        )


def _passbook(book: eb.EventStore, stream: str) -> Table:
    table = Table(title=f"passbook of {stream}", title_justify="left")
    for column in ("version", "position", "type", "amount", "balance"):
        table.add_column(column, justify="right" if column != "type" else "left")
    balance = 0
    for event in book.read_stream(stream):
        amount = event.data.get("amount", 0)
        balance += -amount if event.type == "Withdrawn" else amount
        table.add_row(
            str(event.version),
            str(event.position),
            event.type,
            str(amount) if amount else "",
            str(balance),
        )
    return table
