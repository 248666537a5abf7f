"""Snapshots, replays and schema checks from the shell: snapshot, replay, upcast."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.markup import escape

from eventbook.cli import output
from eventbook.cli.apps import AppOption, resolve_app
from eventbook.cli.errors import EXIT_CONFLICT
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.progress import with_progress
from eventbook.cli.stores import open_for_reading, open_for_writing, store_url
from eventbook.engine.engine import Engine
from eventbook.engine.verification import check_upcasting, verify_replay
from eventbook.errors import InvalidInput


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--day-end {text!r} is not a date; use YYYY-MM-DD") from None


def snapshot(
    ctx: typer.Context,
    stream: Annotated[
        list[str] | None,
        typer.Option("--stream", "-s", metavar="S", help="Snapshot this stream (repeatable)."),
    ] = None,
    day_end: Annotated[
        str | None,
        typer.Option(
            "--day-end",
            metavar="DATE",
            help="Save the whole state as recorded by the end of business day DATE "
            "(YYYY-MM-DD; month, quarter and year ends are their last day's).",
        ),
    ] = None,
    list_them: Annotated[
        bool, typer.Option("--list", help="List the stored snapshots instead of taking one.")
    ] = False,
    app: AppOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Take snapshots: of given streams, a day-end cut-off, or (with no option) of every
    stream of the application. `--list` shows what is stored."""
    if list_them:
        _list_snapshots(ctx, store, as_json)
        return
    day = _parse_day(day_end) if day_end else None
    console = output.stdout_console()
    with open_for_writing(store_url(ctx, store)) as opened:
        _, application = resolve_app(opened, app)
        engine = Engine(application, opened)
        if day is not None:
            folded = engine.day_end(day)
            line = {
                "day_end": day.isoformat(),
                "position": folded.position,
                "streams": len(folded.states),
                "state_hash": folded.state_hash(),
            }
            if as_json:
                output.json_line(line)
            else:
                console.print(
                    f"saved the day-end cut-off of {day}: position {folded.position}, "
                    f"{len(folded.states)} streams, state hash {folded.state_hash()[:16]}…"
                )
            if not stream:
                return
        names = stream or [
            info.stream for info in opened.streams() if application.decider_for(info.stream)
        ]
        for name in with_progress(names, len(names), "snapshots"):
            folded = engine.snapshot(name)
            if as_json:
                output.json_line(
                    {"stream": name, "version": folded.version, "position": folded.position}
                )
            else:
                console.print(
                    f"saved a snapshot of {escape(name)} at version {folded.version} "
                    f"(position {folded.position})"
                )


def _list_snapshots(ctx: typer.Context, store: str | None, as_json: bool) -> None:
    with open_for_reading(store_url(ctx, store)) as opened:
        found = list(opened.snapshots().all())
    if as_json:
        for s in found:
            output.json_line(
                {
                    "key": s.key,
                    "label": s.label,
                    "version": s.version,
                    "position": s.position,
                    "code_version": s.code_version,
                    "recorded_at": s.recorded_at,
                    "state_hash": s.state_hash,
                }
            )
        return
    table = output.TableWriter(
        output.stdout_console(),
        [
            output.Column("key", width_min=3, width_max=40, style="cyan"),
            output.Column("day", width_min=3, width_max=10),
            output.Column("version", "right", 7, 12),
            output.Column("position", "right", 8, 12),
            output.Column("code", width_min=4, width_max=30),
            output.Column("state hash", width_min=10),
        ],
    )
    for s in found:
        table.add(s.key, s.label, s.version, s.position, s.code_version, s.state_hash[:16])
    if not table.close():
        output.stderr_console().print("no snapshots yet", style="dim")


def replay(
    ctx: typer.Context,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Compare the fresh replay with every stored snapshot and cut-off and with "
            "the live replica; exit 1 on any difference.",
        ),
    ] = False,
    app: AppOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Replay the whole log from the first event, without snapshots, and print the state
    hash (with --verify, check it against what was saved)."""
    with open_for_reading(store_url(ctx, store)) as opened:
        _, application = resolve_app(opened, app)
        report = verify_replay(
            application, opened, lambda events, total: with_progress(events, total, "replay")
        )
    if as_json:
        output.json_line(
            {
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
    else:
        console = output.stdout_console()
        console.print(
            f"replayed {report.events} events to position {report.position}: "
            f"state hash {report.state_hash}"
        )
        if verify:
            console.print(
                f"live replica: {report.replica_hash}\n"
                f"snapshots and cut-offs checked: {report.snapshots_checked} "
                f"(ignored, other code versions: {report.snapshots_ignored})"
            )
            for line in report.mismatches:
                output.stderr_console().print(f"[red]mismatch[/] {escape(line)}")
            if report.ok:
                console.print("[green]verified[/]: every saved state equals the replay")
    if verify and not report.ok:
        raise typer.Exit(EXIT_CONFLICT)


def upcast(
    ctx: typer.Context,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Read the whole log through the upcasters and report what fails."
        ),
    ] = False,
    app: AppOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Check that every stored event still reads into the application's event types through
    its upcasters (stored bytes are never rewritten). Exit 1 if any fails."""
    if not check:
        raise InvalidInput("upcast only checks for now: give --check")
    with open_for_reading(store_url(ctx, store)) as opened:
        _, application = resolve_app(opened, app)
        report = check_upcasting(
            application, opened, lambda events, total: with_progress(events, total, "upcast")
        )
    if as_json:
        output.json_line(
            {
                "events": report.events,
                "checked": report.checked,
                "ok": report.ok,
                "failures": [
                    {
                        "type": f.type,
                        "schema_version": f.schema_version,
                        "count": f.count,
                        "first_position": f.first_position,
                        "error": f.error,
                    }
                    for f in report.failures.values()
                ],
            }
        )
    else:
        console = output.stdout_console()
        console.print(f"read {report.checked} of {report.events} events through the upcasters")
        for f in report.failures.values():
            output.stderr_console().print(
                f"[red]fails[/] {escape(f.type)} v{f.schema_version}: {f.count} events, first at "
                f"position {f.first_position}: {escape(f.error)}"
            )
        if report.ok:
            console.print("[green]ok[/]: every event reads into the current types")
    if not report.ok:
        raise typer.Exit(EXIT_CONFLICT)
