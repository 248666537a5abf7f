"""`eventbook sagas list | show ID | retry ID | run`: the process managers, as an operator
sees and drives them. `list`, `show` and `retry` need only the store; `run` needs the
application (`--app`, or the one the store remembers)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape

from eventbook.cli import output
from eventbook.cli.apps import AppOption, resolve_app
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.stores import open_for_reading, open_for_writing, store_url
from eventbook.engine.engine import Engine
from eventbook.errors import InvalidInput
from eventbook.sagas.inspect import list_sagas, retry_saga, show_saga
from eventbook.sagas.runner import SagaRunner

sagas_app = typer.Typer(
    name="sagas",
    help="Sagas: the process managers (list, show, retry a parked one, run).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

SagaId = Annotated[str, typer.Argument(help="The saga instance, as `list` shows it: order-o1.")]
STATUS_STYLE = {"completed": "green", "compensated": "yellow", "parked": "red", "running": None}


@sagas_app.command("list")
def list_command(
    ctx: typer.Context,
    saga: Annotated[
        str | None, typer.Option("--saga", help="Only the instances of this saga (by name).")
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Every saga instance: its status (running, completed, compensated, parked), pending
    timers and parked commands. --json prints one object per saga (id, status, ...)."""
    with open_for_reading(store_url(ctx, store)) as opened:
        found = list(list_sagas(opened, saga))
    if as_json:
        for item in found:
            output.json_line(item.as_json())
        return
    table = output.TableWriter(
        output.stdout_console(),
        [
            output.Column("saga", width_min=4, width_max=40, style="cyan"),
            output.Column("status", width_min=6, width_max=12),
            output.Column("version", "right", 7, 8),
            output.Column("timers", width_min=6),
            output.Column("parked", width_min=6),
        ],
    )
    for item in found:
        table.add(
            item.id,
            item.status,
            str(item.version),
            ", ".join(f"{k} at {v}" for k, v in item.timers.items()),
            ", ".join(item.parked) or "",
            style=STATUS_STYLE.get(item.status),
        )
    if not table.close():
        output.stderr_console().print("no saga has run on this store", style="dim")


@sagas_app.command("show")
def show_command(
    ctx: typer.Context, saga_id: SagaId, as_json: JsonOption = False, store: StoreOption = None
) -> None:
    """One saga instance: its state, pending timers, parked commands and history (each input,
    the commands it issued, the status it reached)."""
    with open_for_reading(store_url(ctx, store)) as opened:
        item, history = show_saga(opened, saga_id)
    if as_json:
        output.json_line({**item.as_json(), "history": [output.event_dict(e) for e in history]})
        return
    console = output.stdout_console()
    console.print(f"[bold]{escape(item.id)}[/]: {item.status}, version {item.version}")
    console.print(f"state: {escape(output.short_json(item.state))}")
    for name, at in item.timers.items():
        console.print(f"timer {escape(name)} at {at}")
    for command_id, reason in item.parked.items():
        console.print(f"[red]parked[/]: {escape(command_id)}: {escape(reason)}")
    for rec in history:
        data = rec.data
        if rec.type == "SagaReacted":
            source = data["input"]
            what = source.get("type") or (
                f"timer {source['timer']}"
                if "timer" in source
                else f"failed {source.get('failed')}"
            )
            issued = ", ".join(c["type"] for c in data["commands"]) or "-"
            console.print(
                f"  {rec.version:>3}  on {escape(str(what))}: issued {escape(issued)}; "
                f"{data['status']}"
            )
        else:
            console.print(f"  {rec.version:>3}  {rec.type} {escape(output.short_json(data))}")


@sagas_app.command("retry")
def retry_command(ctx: typer.Context, saga_id: SagaId, store: StoreOption = None) -> None:
    """Try a parked saga's failed commands again (the running `sagas run` executes them)."""
    with open_for_writing(store_url(ctx, store)) as opened:
        ids = retry_saga(opened, saga_id)
    output.stdout_console().print(
        f"{saga_id}: {len(ids)} command(s) to try again: {', '.join(ids)}"
    )


@sagas_app.command("run")
def run_command(
    ctx: typer.Context,
    app: AppOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run until there is nothing to do, then exit.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Run the application's sagas: react to the log, fire due timers, execute the commands
    they issue. Until Ctrl-C, or with --once until idle."""
    with open_for_writing(store_url(ctx, store)) as opened:
        _, application = resolve_app(opened, app)
        if not application.sagas:
            raise InvalidInput(f"the {application.name} application declares no sagas")
        engine = Engine(application, opened)
        runners = [SagaRunner(engine, saga) for saga in application.sagas]
        err = output.stderr_console()
        try:
            while True:
                done = sum(runner.run_once() for runner in runners)
                if done:
                    continue
                if once:
                    break
                opened.wait_for_append(min(r.position for r in runners), 0.5)
                time.sleep(0.01)
        except KeyboardInterrupt:
            err.print("stopped", style="dim")
        for runner in runners:
            for error in runner.errors:
                err.print(f"[yellow]failed[/]: {escape(error)}")
