"""The command side from the shell: run a command, and look at state and history.

    eventbook run --app eventbook.examples.bank:app Deposit '{"account_id":"a1","amount":5}'
    eventbook state account-a1 [--at-version N | --at-position P | --as-of T | --occurred-by T]
    eventbook history account-a1

A rejected command exits with code 1 and prints its rejection code; bad input exits with 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import typer
from rich.markup import escape

from eventbook.cli import output
from eventbook.cli.apps import EXAMPLE, AppOption, load_app, remember_app, resolve_app
from eventbook.cli.auditing import (
    ActorOption,
    CausationOption,
    CorrelationOption,
    ReasonOption,
    audit_metadata,
)
from eventbook.cli.errors import EXIT_CONFLICT
from eventbook.cli.inputs import parse_json_object, parse_time
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.stores import open_for_reading, open_for_writing, store_url
from eventbook.engine.codec import parse_command
from eventbook.engine.engine import Engine, Outcome, utc_now
from eventbook.engine.folding import Folded, Target, decider_of
from eventbook.engine.history import HistoryEntry
from eventbook.errors import EventbookError, InvalidInput


def run(
    ctx: typer.Context,
    command: Annotated[str, typer.Argument(help="Command type, such as Deposit.")],
    data: Annotated[
        str,
        typer.Argument(help="The command's fields as a JSON object ('-' reads stdin)."),
    ] = "{}",
    app: AppOption = None,
    command_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            metavar="ID",
            help="Command id: the same id again returns the first outcome and writes nothing.",
        ),
    ] = None,
    occurred_at: Annotated[
        str | None,
        typer.Option(
            "--occurred-at",
            metavar="TIME",
            help="When it happened (ISO 8601 with a zone); default: when it is recorded.",
        ),
    ] = None,
    actor: ActorOption = None,
    reason: ReasonOption = None,
    correlation: CorrelationOption = None,
    causation: CausationOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Run one command through its decider: its events are appended atomically, or its
    rejection is recorded (exit code 1)."""
    fields = parse_json_object(data, what=f"{command} data")
    when = parse_time(occurred_at, what="--occurred-at") if occurred_at else None
    url = store_url(ctx, store)
    if app is None:  # the application this store ran last: look it up without writing
        try:
            with open_for_reading(url) as opened:
                app, _ = resolve_app(opened, None)
        except EventbookError as error:
            if isinstance(error, InvalidInput) and "--app" in error.message:
                raise
            raise InvalidInput(
                f"which application? give --app module:attribute (for example --app "
                f"{EXAMPLE}) or set EVENTBOOK_APP ({error.message})"
            ) from None
    path, application = app, load_app(app)
    parsed = parse_command(application, command, fields)  # bad input: nothing is opened
    meta = audit_metadata(actor, reason, correlation, causation)
    meta = application.audit.checked(meta, app=application.name)  # who and why, if required
    if when is not None:  # the application's rule for occurred times (its calendar's skew...)
        application.check_occurred_at(when, now=utc_now())
    with open_for_writing(url) as opened:
        outcome = Engine(application, opened).execute(
            parsed, command_id=command_id, occurred_at=when, metadata=meta
        )
        remember_app(opened, path)
    _print_outcome(outcome, as_json=as_json)
    if not outcome.accepted:
        raise typer.Exit(EXIT_CONFLICT)


def _print_outcome(outcome: Outcome, *, as_json: bool) -> None:
    if as_json:
        output.json_line(
            {
                "command": outcome.command_type,
                "command_id": outcome.command_id,
                "accepted": outcome.accepted,
                "duplicate": outcome.duplicate,
                "rejection": None
                if outcome.rejection is None
                else {"code": outcome.rejection.code, "detail": outcome.rejection.detail},
                "position": outcome.position,
                "events": [output.event_dict(e) for e in outcome.events],
            }
        )
        return
    console = output.stdout_console()
    again = (
        f" (a repeat of command id {outcome.command_id}: nothing written)"
        if outcome.duplicate
        else ""
    )
    if outcome.accepted:
        console.print(f"[green]accepted[/] {escape(outcome.command_type)}{escape(again)}")
        for e in outcome.events:
            console.print(
                f"  {e.position} [cyan]{escape(e.stream)}[/] v{e.version} "
                f"[green]{escape(e.type)}[/] {escape(output.short_json(e.data))}"
            )
        return
    assert outcome.rejection is not None
    where = f", recorded at position {outcome.position}" if outcome.events else ""
    output.stderr_console().print(
        f"[red]rejected[/] {escape(outcome.command_type)}: "
        f"[bold]{escape(outcome.rejection.code)}[/] {escape(outcome.rejection.detail)}"
        f"{escape(where)}{escape(again)}"
    )


AtVersion = Annotated[
    int | None, typer.Option("--at-version", min=0, metavar="N", help="The state at version N.")
]
AtPosition = Annotated[
    int | None,
    typer.Option("--at-position", min=0, metavar="P", help="The state at global position P."),
]
AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of", metavar="TIME", help="As we knew it then: events recorded by TIME (ISO 8601)."
    ),
]
OccurredBy = Annotated[
    str | None,
    typer.Option(
        "--occurred-by",
        metavar="TIME",
        help="As it really was: events that occurred by TIME (ISO 8601), late ones included.",
    ),
]


def state(
    ctx: typer.Context,
    stream: Annotated[str, typer.Argument(help="Stream id, such as account-a1.")],
    at_version: AtVersion = None,
    at_position: AtPosition = None,
    as_of: AsOf = None,
    occurred_by: OccurredBy = None,
    no_snapshots: Annotated[
        bool, typer.Option("--no-snapshots", help="Fold every event from the start.")
    ] = False,
    app: AppOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the state's fields as a JSON object (plus _meta)."),
    ] = False,
    store: StoreOption = None,
) -> None:
    """Print a stream's state now, or at a version, position or time (the time machine)."""
    target = Target(
        at_version=at_version,
        at_position=at_position,
        as_of=parse_time(as_of, what="--as-of") if as_of else None,
        occurred_by=parse_time(occurred_by, what="--occurred-by") if occurred_by else None,
    )
    with open_for_reading(store_url(ctx, store)) as opened:
        _, application = resolve_app(opened, app)
        folded = Engine(application, opened).state(stream, target, use_snapshots=not no_snapshots)
    fields = _as_object(folded.state)
    meta = _fold_meta(folded)
    if as_json:
        output.json_line({**fields, "_meta": meta})
        return
    console = output.stdout_console()
    console.print(output.key_value_table(list(fields.items()), ("field", "value")))
    console.print(escape(_fold_line(folded)), style="dim")


def _as_object(state: Any) -> dict[str, Any]:
    value = msgspec.to_builtins(state)
    return value if isinstance(value, dict) else {"state": value}


def _fold_meta(folded: Folded) -> dict[str, Any]:
    snap = folded.snapshot
    return {
        "stream": folded.stream,
        "version": folded.version,
        "position": folded.position,
        "recorded_at": folded.recorded_at,
        "snapshot": None
        if snap is None
        else {
            "version": snap.version,
            "position": snap.position,
            "code_version": snap.code_version,
        },
        "events_folded": folded.folded,
    }


def _fold_line(folded: Folded) -> str:
    start = (
        f"snapshot at version {folded.snapshot.version}"
        if folded.snapshot is not None
        else "the first event"
    )
    return (
        f"{folded.stream} at version {folded.version} (position {folded.position}): "
        f"from {start}, then {folded.folded} events"
    )


def history(
    ctx: typer.Context,
    stream: Annotated[str, typer.Argument(help="Stream id, such as account-a1.")],
    app: AppOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Print a stream's passbook: every command tried on it (rejections included), its events
    and the state after it."""
    with open_for_reading(store_url(ctx, store)) as opened:
        _, application = resolve_app(opened, app)
        entries = Engine(application, opened).history(stream)
        describe = decider_of(application, stream).describe or _short_state
        if as_json:
            for entry in entries:
                output.json_line(_entry_dict(entry))
            return
        console = output.stdout_console()
        with_time = len(output.event_times(console)) > 1  # wide consoles show more
        with_data = bool(output.event_times(console))
        columns = [
            output.Column("position", "right", 8, 12),
            output.Column("version", "right", 7, 10),
        ]
        if with_time:
            columns.append(output.Column("recorded at", width_min=20, width_max=20))
        columns += [
            output.Column("command", width_min=7, width_max=16, style="cyan"),
            output.Column("outcome", width_min=7, width_max=30),
        ]
        if with_data:
            columns.append(output.Column("command data", width_min=12, width_max=30))
        columns.append(output.Column("state after", width_min=12))
        table = output.TableWriter(console, columns)
        for entry in entries:
            cells = _entry_cells(entry, describe)
            if not with_data:
                del cells[5]
            if not with_time:
                del cells[2]
            table.add(*cells, style="red" if entry.rejection else None)
        if not table.close():
            output.stderr_console().print(f"no history for {stream!r}", style="dim")


def _entry_dict(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "position": entry.position,
        "version": entry.version,
        "recorded_at": entry.recorded_at,
        "occurred_at": entry.occurred_at,
        "command": entry.command,
        "events": [{"type": e.type, "data": e.data} for e in entry.events],
        "rejection": entry.rejection,
        "state": msgspec.to_builtins(entry.state),
    }


def _short_state(state: Any) -> str:
    return output.short_json(msgspec.to_builtins(state))


def _entry_cells(entry: HistoryEntry, describe: Callable[[Any], str]) -> list[object]:
    if entry.rejection:
        outcome = f"rejected: {entry.rejection['code']}"
    else:
        outcome = ", ".join(e.type for e in entry.events)
    return [
        entry.position,
        entry.version,
        output.human_time(entry.recorded_at),
        entry.command.get("type", ""),
        outcome,
        output.short_json(entry.command.get("data", {})),
        describe(entry.state),
    ]
