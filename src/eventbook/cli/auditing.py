"""Audit from the shell: who did what and why, re-decision, and fixing the past by appending.

    eventbook audit [--stream S] [--actor A] [--correlation C] [--from TIME] [--to TIME]
    eventbook verify --replay --redecide --app MODULE:ATTR     (the checks beside the bytes')
    eventbook what-if --app fixed_module:app [--from P] [--book --actor A --reason R]

A thin layer over `eventbook.audit`: parse, call, print.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
import typer
from rich.markup import escape

from eventbook.audit import (
    AuditEntry,
    AuditQuery,
    RedecideReport,
    WhatIfReport,
    audit_trail,
    book_corrections,
    verify_redecide,
    what_if,
)
from eventbook.cli import output
from eventbook.cli.apps import load_app, resolve_app
from eventbook.cli.errors import EXIT_DAMAGED
from eventbook.cli.inputs import parse_time
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.progress import with_progress
from eventbook.cli.stores import open_for_reading, open_for_writing, store_url
from eventbook.engine.verification import ReplayReport, verify_replay
from eventbook.errors import InvalidInput

ActorOption = Annotated[
    str | None,
    typer.Option("--actor", metavar="NAME", help="Who issues it (recorded with every event)."),
]
ReasonOption = Annotated[
    str | None,
    typer.Option("--reason", metavar="TEXT", help="Why (recorded with every event)."),
]
CorrelationOption = Annotated[
    str | None,
    typer.Option(
        "--correlation",
        metavar="ID",
        help="The business transaction it belongs to (default: its own command id).",
    ),
]
CausationOption = Annotated[
    str | None,
    typer.Option("--causation", metavar="ID", help="The command or event that caused it."),
]


def audit_metadata(
    actor: str | None,
    reason: str | None,
    correlation: str | None = None,
    causation: str | None = None,
) -> dict[str, str]:
    """The audit fields a command line gave, as the engine's metadata."""
    given = {
        "actor": actor,
        "reason": reason,
        "correlation_id": correlation,
        "causation_id": causation,
    }
    return {name: value for name, value in given.items() if value is not None}


# -- eventbook audit ------------------------------------------------------------------------------


def audit(
    ctx: typer.Context,
    stream: Annotated[
        str | None,
        typer.Option("--stream", "-s", metavar="S", help="Commands that wrote to stream S."),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", metavar="NAME", help="Commands issued by NAME.")
    ] = None,
    correlation: Annotated[
        str | None,
        typer.Option("--correlation", metavar="ID", help="Commands of correlation ID."),
    ] = None,
    recorded_from: Annotated[
        str | None,
        typer.Option("--from", metavar="TIME", help="Recorded at or after TIME (ISO 8601)."),
    ] = None,
    recorded_to: Annotated[
        str | None,
        typer.Option("--to", metavar="TIME", help="Recorded before TIME (ISO 8601)."),
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Who did what and why: the recorded commands (rejections included), who issued them,
    the reason given, and the events they produced. Filters combine."""
    query = AuditQuery(
        stream=stream,
        actor=actor,
        correlation=correlation,
        recorded_from=parse_time(recorded_from, what="--from") if recorded_from else None,
        recorded_to=parse_time(recorded_to, what="--to") if recorded_to else None,
    )
    with open_for_reading(store_url(ctx, store)) as opened:
        entries = audit_trail(opened, query)
        if as_json:
            for entry in entries:
                output.json_line(entry_dict(entry))
            return
        _print_entries(entries)


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "position": entry.position,
        "positions": entry.positions,
        "commit_id": entry.commit_id,
        "recorded_at": entry.recorded_at,
        "actor": entry.actor,
        "reason": entry.reason,
        "correlation_id": entry.correlation_id,
        "causation_id": entry.causation_id,
        "command": entry.command,
        "outcome": entry.outcome,
        "rejection": entry.rejection,
        "corrects": entry.corrects,
        "events": [
            {
                "position": e.position,
                "stream": e.stream,
                "version": e.version,
                "type": e.type,
                "data": e.data,
            }
            for e in entry.events
        ],
    }


def _print_entries(entries: Any) -> None:
    console = output.stdout_console()
    wide = output.event_times(console)  # narrow consoles drop the time, then the events
    columns = [output.Column("position", "right", 8, 12)]
    if wide:
        columns.append(output.Column("recorded at", width_min=20, width_max=20))
    columns += [
        output.Column("actor", width_min=5, width_max=16, style="cyan"),
        output.Column("command", width_min=7, width_max=16),
        output.Column("outcome", width_min=7, width_max=28),
        output.Column("reason", width_min=6, width_max=None if len(wide) < 2 else 30),
    ]
    if len(wide) > 1:
        columns.append(output.Column("events", width_min=6))
    table = output.TableWriter(console, columns)
    for entry in entries:
        command = entry.command or {}
        outcome = entry.outcome
        if entry.rejection:
            outcome = f"rejected: {entry.rejection['code']}"
        elif entry.corrects:
            outcome = f"corrects {len(entry.corrects)} commit(s)"
        cells: list[object] = [entry.position]
        if wide:
            cells.append(output.human_time(entry.recorded_at))
        cells += [entry.actor or "-", command.get("type", "-"), outcome, entry.reason or ""]
        if len(wide) > 1:
            cells.append(
                ""
                if entry.rejection
                else ", ".join(f"{e.type} {e.stream} v{e.version}" for e in entry.events)
            )
        table.add(*cells, style="red" if entry.rejection else None)
    if not table.close():
        output.stderr_console().print("no recorded commands match", style="dim")


# -- eventbook verify --replay / --redecide --------------------------------------------------------


def verify_decisions(
    url: str, app: str | None, *, replay: bool, redecide: bool, as_json: bool
) -> None:
    """Run the requested checks on an application's history; exit 3 on any difference."""
    with open_for_reading(url) as opened:
        _, application = resolve_app(opened, app)
        replayed = redecided = None
        if replay:
            replayed = verify_replay(
                application, opened, lambda events, total: with_progress(events, total, "replay")
            )
            _print_replay(replayed, as_json)
        if redecide:
            redecided = verify_redecide(
                application,
                opened,
                lambda events, total: with_progress(events, total, "re-decide"),
            )
            _print_redecide(redecided, as_json)
    if (replayed and not replayed.ok) or (redecided and not redecided.ok):
        raise typer.Exit(EXIT_DAMAGED)


def _print_replay(report: ReplayReport, as_json: bool) -> None:
    if as_json:
        output.json_line(
            {
                "check": "replay",
                "position": report.position,
                "events": report.events,
                "state_hash": report.state_hash,
                "replica_hash": report.replica_hash,
                "snapshots_checked": report.snapshots_checked,
                "snapshots_ignored": report.snapshots_ignored,
                "mismatches": report.mismatches,
                "ok": report.ok,
            }
        )
        return
    console = output.stdout_console()
    for line in report.mismatches:
        console.print(f"[red]replay differs[/]: {escape(line)}", soft_wrap=True)
    if report.ok:
        console.print(
            f"[green]ok[/]: replayed {report.events} events to position {report.position}; "
            f"{report.snapshots_checked} snapshots and cut-offs and the replica agree "
            f"(state hash {report.state_hash[:16]}…)",
            soft_wrap=True,
        )


def _print_redecide(report: RedecideReport, as_json: bool) -> None:
    if as_json:
        output.json_line(
            {
                "check": "redecide",
                "position": report.position,
                "commands": report.commands,
                "matched": report.matched,
                "rejections": report.rejections,
                "unchecked": report.unchecked,
                "mismatch_count": report.mismatch_count,
                "mismatches": [dataclasses.asdict(m) for m in report.mismatches],
                "ok": report.ok,
            }
        )
        return
    console = output.stdout_console()
    if report.ok:
        console.print(
            f"[green]ok[/]: decided {report.commands} recorded commands again "
            f"({report.rejections} rejections) to position {report.position}: each yields "
            f"what was recorded ({report.unchecked} other commits not commands)",
            soft_wrap=True,
        )
        return
    first = report.first
    assert first is not None
    console.print(
        f"[red]differs[/]: {report.mismatch_count} of {report.commands} commands decide "
        f"otherwise than recorded; the first at {escape(first.describe())}",
        soft_wrap=True,
    )
    for m in report.mismatches[1:]:
        console.print(f"  {escape(m.describe())}", style="red", soft_wrap=True)


# -- eventbook what-if ----------------------------------------------------------------------------


def what_if_command(
    ctx: typer.Context,
    app: Annotated[
        str,
        typer.Option(
            "--app",
            metavar="MODULE:ATTR",
            help="The application with the corrected deciders, as module:attribute.",
            show_default=False,
        ),
    ],
    after: Annotated[
        int,
        typer.Option(
            "--from",
            min=0,
            metavar="P",
            help="Decide again the commands after position P (0: every command).",
        ),
    ] = 0,
    book: Annotated[
        bool,
        typer.Option(
            "--book",
            help="Append the compensating events (the decider's correct()), linked to the "
            "commits they correct.",
        ),
    ] = False,
    actor: ActorOption = None,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Decide the recorded commands again with corrected deciders and show, per stream, how
    the state would differ from today's; `--book` appends the difference (never edits)."""
    application = load_app(app)
    meta = audit_metadata(actor, reason)
    if book:
        meta = application.audit.checked(meta, app=application.name)
    elif meta:
        raise InvalidInput("--actor and --reason go with --book (what-if alone writes nothing)")
    url = store_url(ctx, store)
    opener = open_for_writing if book else open_for_reading
    with opener(url) as opened:
        report = what_if(
            application,
            opened,
            after=after,
            wrap=lambda events, total: with_progress(events, total, "what-if"),
        )
        booked = book_corrections(application, opened, report, metadata=meta) if book else []
    _print_what_if(report, {b.stream: b for b in booked}, as_json)


def _print_what_if(report: WhatIfReport, booked: dict[str, Any], as_json: bool) -> None:
    if as_json:
        for d in report.differences:
            line: dict[str, Any] = {
                "stream": d.stream,
                "version": d.version,
                "before": msgspec.to_builtins(d.before),
                "after": msgspec.to_builtins(d.after),
                "corrects": d.corrects,
                "corrects_count": d.corrects_count,
            }
            if d.stream in booked:
                b = booked[d.stream]
                line["booked"] = {"commit_id": b.commit_id, "position": b.result.last_position}
            output.json_line(line)
        return
    console = output.stdout_console()
    console.print(
        f"decided {report.commands} commands after position {report.after} again (to position "
        f"{report.position}): {report.changed} come out differently, "
        f"{len(report.differences)} stream(s) differ",
        soft_wrap=True,
    )
    for d in report.differences:
        before, after = msgspec.to_builtins(d.before), msgspec.to_builtins(d.after)
        changes = _changed_fields(before, after)
        line = f"  [cyan]{escape(d.stream)}[/] (version {d.version}): {escape(changes)}"
        if d.stream in booked:
            line += f" [green]booked[/] at position {booked[d.stream].result.last_position}"
        console.print(line, soft_wrap=True)
    if report.differences and not booked:
        console.print("give --book to append the compensating events", style="dim")


def _changed_fields(before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        names = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
        return ", ".join(f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in names)
    return f"{output.short_json(before)} -> {output.short_json(after)}"
