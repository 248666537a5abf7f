"""`eventbook demo [bank|shop]`: the stories of the seeds on the embedded default.

`bank` (the default) is seed 001's story through the engine; `shop` is seed 004's order saga
(cli/demo_shop.py).

It opens two accounts, deposits, withdraws, has an overdraft rejected (and recorded), transfers
money in one commit across two streams, takes a snapshot, and then prints the passbooks, the
time machine at an earlier version and the snapshot a load starts from. Without `--store` it
runs in a fresh directory; every command carries an id, so running it again on the same store
writes nothing and shows the same story.
"""

from __future__ import annotations

import tempfile
from typing import Annotated

import typer
from rich.table import Table

import eventbook as eb
from eventbook.cli import demo_retail, demo_shop, output
from eventbook.cli.apps import remember_app
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.stores import open_for_writing, store_url
from eventbook.errors import InvalidInput
from eventbook.examples import bank

APP_PATH = "eventbook.examples.bank:app"

STORY: list[tuple[str, str, dict[str, object]]] = [
    ("ada opens an account", "OpenAccount", {"account_id": "ada"}),
    ("bob opens an account", "OpenAccount", {"account_id": "bob"}),
    ("ada deposits 100", "Deposit", {"account_id": "ada", "amount": 100}),
    ("ada withdraws 30", "Withdraw", {"account_id": "ada", "amount": 30}),
    ("ada tries to withdraw 500", "Withdraw", {"account_id": "ada", "amount": 500}),
    (
        "ada transfers 50 to bob",
        "Transfer",
        {"from_account": "ada", "to_account": "bob", "amount": 50},
    ),
]
AFTER_SNAPSHOT = ("ada deposits 25", "Deposit", {"account_id": "ada", "amount": 25})


StoryArgument = Annotated[
    str,
    typer.Argument(
        help="The story: bank (seed 001, the default), shop (seed 004's order saga), retail "
        "or retail-week (seed 000's late sales, docs/temporal.md).",
        show_default=False,
    ),
]


def demo(
    ctx: typer.Context,
    story: StoryArgument = "bank",
    store: StoreOption = None,
    json_output: JsonOption = False,
    plot: Annotated[
        str | None,
        typer.Option("--plot", metavar="FILE", help="retail stories: draw the books at the end."),
    ] = None,
) -> None:
    """Run a story on the embedded store (or --store URL). `bank` (the default, seed 001):
    commands, a rejected overdraft, an atomic transfer, passbooks, the time machine and a
    snapshot. `shop` (seed 004): orders approved or rejected against a customer's credit by
    the order saga, a cancellation compensated. `retail`, `retail-week` (seed 000): late
    sales, the three views and correction notices (`--json`: JSON lines, the summary last)."""
    stories = {
        "bank": _bank,
        "shop": demo_shop.shop,
        "retail": lambda url: demo_retail.retail(url, json_output=json_output, plot=plot),
        "retail-week": lambda url: demo_retail.retail_week(url, json_output=json_output, plot=plot),
    }
    run = stories.get(story)
    if run is None:
        raise InvalidInput(f"no demo story {story!r}; the stories are {', '.join(stories)}")
    if plot is not None and not story.startswith("retail"):
        raise InvalidInput(f"--plot draws the retail stories' books; the {story} story has none")
    run(_demo_url(ctx, store))


def _bank(url: str) -> None:
    console = output.stdout_console()
    with open_for_writing(url) as book:
        remember_app(book, APP_PATH)
        engine = eb.Engine(bank.app, book)
        console.print(f"[bold]eventbook demo[/]: the bank of seed 001 on {book.url}\n")
        for n, (title, command, data) in enumerate(STORY, 1):
            outcome = engine.run(command, data, command_id=f"demo-{n}")
            _show(console, title, outcome)
        again = engine.run(STORY[-1][1], STORY[-1][2], command_id=f"demo-{len(STORY)}")
        console.print(
            f"  the same transfer sent again (command id {again.command_id}): "
            f"{'the first outcome, nothing written' if again.duplicate else 'written'}"
        )
        after_transfer = outcome.events[0].version  # ada's version after the transfer
        snap = engine.snapshot("account-ada", eb.Target(at_version=after_transfer))
        console.print(f"  snapshot of account-ada taken at version {snap.version}")
        _show(console, *AFTER_SNAPSHOT[:1], engine.run(*AFTER_SNAPSHOT[1:], command_id="demo-7"))
        console.print()
        for stream in ("account-ada", "account-bob"):
            console.print(_passbook(engine, stream))
        past = engine.state("account-ada", eb.Target(at_version=2))
        now = engine.state("account-ada")
        console.print(
            f"\n[bold]time machine[/]: account-ada at version 2 had balance "
            f"{past.state.balance}; now, at version {now.version}, it has {now.state.balance}."
        )
        start = (
            f"the snapshot at version {now.snapshot.version}"
            if now.snapshot is not None
            else "the first event"
        )
        console.print(
            f"[bold]snapshot in use[/]: loading account-ada started from {start} and folded "
            f"{now.folded} event(s) after it."
        )
        console.print(
            f"\nTry: eventbook --store {url} history account-ada | state account-ada --json | "
            "state account-ada --at-version 2 | replay --verify | log"
        )


def _demo_url(ctx: typer.Context, store: str | None) -> str:
    """The store given with --store (here or globally, or in EVENTBOOK_STORE); otherwise a
    fresh directory, so the story starts from nothing."""
    if store:
        return store
    parent = ctx.parent
    source = parent.get_parameter_source("store") if parent is not None else None
    if getattr(source, "name", "DEFAULT") != "DEFAULT":  # typer may vendor its own click
        return store_url(ctx, None)
    return tempfile.mkdtemp(prefix="eventbook-demo-")


def _show(console: object, title: str, outcome: eb.Outcome) -> None:
    if outcome.accepted:
        streams = sorted({e.stream for e in outcome.events})
        what = f"{', '.join(e.type for e in outcome.events)} in {', '.join(streams)}"
        first, last = outcome.events[0].position, outcome.position
        where = f"positions {first}..{last}" if last > first else f"position {first}"
        result = f"[green]accepted[/]: {what} ({where})"
    else:
        assert outcome.rejection is not None
        result = (
            f"[red]rejected[/]: {outcome.rejection.code} ({outcome.rejection.detail}), "
            f"recorded at position {outcome.position}"
        )
    console.print(f"  {title}: {result}")  # type: ignore[attr-defined]


def _passbook(engine: eb.Engine, stream: str) -> Table:
    table = Table(title=f"passbook of {stream}", title_justify="left")
    for column in ("position", "command", "outcome", "amount", "balance"):
        table.add_column(
            column, justify="right" if column in ("position", "amount", "balance") else "left"
        )
    for entry in engine.history(stream):
        data = entry.command.get("data", {})
        outcome = (
            f"rejected: {entry.rejection['code']}"
            if entry.rejection
            else ", ".join(e.type for e in entry.events)
        )
        table.add_row(
            str(entry.position),
            entry.command.get("type", ""),
            outcome,
            str(data.get("amount", "")),
            str(entry.state.balance),
            style="red" if entry.rejection else None,
        )
    return table
