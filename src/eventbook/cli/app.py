"""The `eventbook` command: a thin layer over the Python API.

Commands parse what the user typed, call the store, and print the result; exit codes come
from `eventbook.cli.errors` (0 ok, 1 conflict, 2 invalid input or usage, 3 store damaged or
locked). Every command is documented in docs/cli.md (a test checks it).
"""

from __future__ import annotations

from typing import Annotated

import typer

import eventbook
from eventbook.cli import (
    auditing,
    commands,
    demo,
    maintenance,
    reading,
    relaying,
    replaying,
    reports,
    writing,
)
from eventbook.cli.errors import EventbookGroup
from eventbook.cli.projections import projections_app
from eventbook.cli.sagas import sagas_app
from eventbook.cli.serving import serve, tokens_app
from eventbook.cli.stores import Settings
from eventbook.store.registry import DEFAULT_STORE

app = typer.Typer(
    name="eventbook",
    cls=EventbookGroup,
    help="eventbook: run commands through deciders; append, read, follow, replay, verify "
    "and repair an event store.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # help paragraphs are reflowed to the terminal width
    pretty_exceptions_show_locals=False,  # a bug's traceback must not print event data
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"eventbook {eventbook.__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            envvar="EVENTBOOK_STORE",
            metavar="URL",
            help="Store URL: a path or file://PATH (embedded log), memory://, or "
            "postgresql://USER@HOST:PORT/DB[?schema=NAME].",
        ),
    ] = DEFAULT_STORE,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = Settings(store=store)


app.command()(writing.append)
app.command()(reading.read)
app.command()(reading.log)
app.command()(reading.streams)
app.command()(reading.stats)
app.command()(reading.tail)
app.command()(maintenance.verify)
app.command()(maintenance.repair)
app.command()(maintenance.inspect)
app.command()(commands.run)
app.command()(commands.state)
app.command()(commands.history)
app.command()(replaying.snapshot)
app.command()(replaying.replay)
app.command()(replaying.upcast)
app.command()(demo.demo)
app.command()(relaying.relay)
app.command()(reports.report)
app.command()(auditing.audit)
app.command(name="what-if")(auditing.what_if_command)
app.add_typer(projections_app)
app.add_typer(sagas_app)
app.command()(serve)
app.add_typer(tokens_app)


def main() -> None:
    """The console script `eventbook`."""
    app(prog_name="eventbook")
