"""The commands that look at (or mend) the stored bytes: verify, repair, inspect.

They call the store registry's report functions, which work on a store that refuses to open.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from eventbook.cli import output
from eventbook.cli.apps import AppOption, load_app
from eventbook.cli.auditing import verify_decisions
from eventbook.cli.errors import EXIT_DAMAGED
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.stores import store_url
from eventbook.store import registry
from eventbook.store.reports import FrameInfo, Problem, VerifyReport


def verify(
    ctx: typer.Context,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="Also rebuild every state from scratch and compare it with the stored "
            "snapshots, cut-offs and the live replica (needs the application).",
        ),
    ] = False,
    redecide: Annotated[
        bool,
        typer.Option(
            "--redecide",
            help="Also decide every recorded command again (recorded now and seed, the state "
            "just before it) and check it yields the recorded events or rejection.",
        ),
    ] = False,
    app: AppOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Check every stored byte of the store without changing anything.

    Checksums, positions, commit shapes, versions and the indexes are checked. Exit 0 when
    sound, 3 when damaged; each problem is named with its file and byte offset. With
    `--replay` and `--redecide` (and `--app module:attribute`), the application's history is
    checked too: exit 3 names the first difference.
    """
    url = store_url(ctx, store)
    if app is not None and (replay or redecide):
        load_app(app)  # a wrong --app is bad input before any store is read
    console = output.stderr_console()
    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as progress:
        task = progress.add_task("verify", total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        report = registry.verify_store(url, progress=advance)
    if as_json:
        output.json_line({**msgspec.structs.asdict(report), "ok": report.ok})
    else:
        _print_verify(report)
    if not report.ok:
        raise typer.Exit(EXIT_DAMAGED)
    if replay or redecide:
        verify_decisions(url, app, replay=replay, redecide=redecide, as_json=as_json)


def _print_verify(report: VerifyReport) -> None:
    summary = (
        f"{report.events_checked} events in {report.commits_checked} commits checked, "
        f"head position {report.head_position}"
    )
    if report.ok:
        output.stdout_console().print(
            f"[green]ok[/]: {escape(report.url)}: {summary}", soft_wrap=True
        )
        return
    console = output.stdout_console()
    console.print(
        f"[red]damaged[/]: {escape(report.url)}: {len(report.problems)} problem(s); {summary}",
        soft_wrap=True,
    )
    for problem in report.problems:
        console.print(f"  {escape(_where(problem))}", style="red", soft_wrap=True)
    console.print(
        "run `eventbook repair` to move the damaged bytes aside (nothing is deleted)",
        markup=False,
        soft_wrap=True,
    )


def _where(problem: Problem) -> str:
    where = []
    if problem.path is not None:
        where.append(problem.path)
    if problem.offset is not None:
        where.append(f"at byte offset {problem.offset}")
    if problem.position is not None:
        where.append(f"(position {problem.position})")
    return (" ".join(where) + ": " if where else "") + problem.what


def repair(
    ctx: typer.Context,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Move damaged or torn bytes aside and rebuild the indexes.

    The damaged bytes go into quarantine (they are never deleted), the log is cut at the first
    damaged record, and every index is rebuilt from the data.
    """
    report = registry.repair_store(store_url(ctx, store))
    if as_json:
        output.json_line(report)
        return
    console = output.stdout_console()
    if not report.quarantined and not report.bytes_moved and not report.indexes_rebuilt:
        console.print(
            f"nothing to repair: {escape(report.url)}, head position {report.head_position}",
            soft_wrap=True,
        )
        return
    rows: list[tuple[str, object]] = [
        ("store", report.url),
        ("head position", report.head_position),
        ("bytes moved", report.bytes_moved),
        ("quarantined to", ", ".join(report.quarantined) or "-"),
        ("indexes rebuilt", ", ".join(report.indexes_rebuilt) or "-"),
    ]
    console.print(output.key_value_table(rows, ("repaired", "")))


def inspect(
    ctx: typer.Context,
    segment: Annotated[
        int | None,
        typer.Option(
            "--segment",
            min=0,
            metavar="N",
            help="Segment number to dump (default: the last segment).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Dump the record headers of one segment of an embedded log.

    For each record: offset, length, position, version, stream, type and whether its checksum
    holds. Exit 3 if a checksum fails.
    """
    frames = registry.inspect_store(store_url(ctx, store), segment=segment)
    damaged = _print_frames(frames, as_json=as_json)
    if damaged:
        output.stderr_console().print(
            f"{damaged} record(s) fail their checksum; run `eventbook verify`",
            style="red",
            markup=False,
        )
        raise typer.Exit(EXIT_DAMAGED)


def _print_frames(frames: Iterable[FrameInfo], *, as_json: bool) -> int:
    """Print frame headers as they are read; return how many fail their checksum."""
    damaged = 0
    table = None
    if not as_json:
        table = output.TableWriter(
            output.stdout_console(),
            [
                output.Column("segment", width_min=7, width_max=40),
                output.Column("offset", "right", 6, 20),
                output.Column("length", "right", 6, 12),
                output.Column("position", "right", 8, 20),
                output.Column("version", "right", 7, 20),
                output.Column("commit i/n", "right", 10, 16),
                output.Column("stream", width_min=6, width_max=40, style="cyan"),
                output.Column("type", width_min=4, width_max=32, style="green"),
                output.Column("crc", width_min=3, width_max=3),
            ],
        )
    for frame in frames:
        damaged += not frame.crc_ok
        if table is None:
            output.json_line(frame)
            continue
        table.add(
            frame.segment,
            frame.offset,
            frame.length,
            frame.position,
            frame.version,
            f"{frame.commit_index}/{frame.commit_count}",
            frame.stream,
            frame.type,
            "ok" if frame.crc_ok else "BAD",
            style=None if frame.crc_ok else "red",
        )
    if table is not None and not table.close():
        output.stderr_console().print("no records in this segment", style="dim")
    return damaged
