"""`eventbook report`: the bitemporal books of an application (docs/temporal.md).

A thin edge over `eventbook.Ledger`: it brings the books' read model up to the store's head
(the store itself is opened read-only) and prints one of three views: `report` (a measure by
period along either time, as known at an instant), `history` (by occurrence, with each
period's status and the adjustments booked into it) or `feed` (the notices).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from eventbook.cli import output
from eventbook.cli.apps import AppOption, resolve_app
from eventbook.cli.inputs import parse_time
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.stores import open_for_reading, store_url
from eventbook.errors import InvalidInput
from eventbook.temporal import Ledger
from eventbook.temporal.books import Books, books_in
from eventbook.temporal.drawing import check_plot_path, draw
from eventbook.temporal.picture import picture_of

VIEWS = ("report", "history", "feed")


def report(
    ctx: typer.Context,
    view: Annotated[
        str, typer.Option("--view", help="report (default), history or feed.", metavar="VIEW")
    ] = "report",
    books: Annotated[
        str | None,
        typer.Option("--books", metavar="MEASURE", help="Which books (default: the only ones)."),
    ] = None,
    axis: Annotated[
        str,
        typer.Option(
            "--axis", metavar="AXIS", help="occurred (when it happened) or recorded (learned)."
        ),
    ] = "occurred",
    period: Annotated[
        str | None,
        typer.Option("--period", metavar="P", help="hour, day or month (default: the books')."),
    ] = None,
    as_known_at: Annotated[
        str | None,
        typer.Option(
            "--as-known-at", metavar="TIME", help="As known at this ISO time (default: now)."
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", metavar="PERIOD", help="First period, e.g. 2026-11-24.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", metavar="PERIOD", help="Last period (included).")
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot",
            metavar="FILE",
            help="Also draw the bitemporal picture to FILE (.png or .svg; needs matplotlib).",
        ),
    ] = None,
    app: AppOption = None,
    json_output: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Print a measure by period, as it happened or as it was learned, as known at a time;
    the history with closes and adjustments; or the feed of notices (seed 000). `--plot`
    draws the days across, as known at successive times, with the corrections."""
    if view not in VIEWS:
        raise InvalidInput(f"--view {view!r} is unknown; use one of {', '.join(VIEWS)}")
    at = parse_time(as_known_at, what="--as-known-at") if as_known_at else None
    target = _plot_target(plot, view, axis) if plot is not None else None
    with open_for_reading(store_url(ctx, store)) as opened:
        _, application = resolve_app(opened, app)
        chosen = _choose(books_in(application), books, application.name)
        if target is not None:
            _check_plot_period(period, chosen)
        with Ledger(chosen, opened, app=application) as ledger:
            ledger.catch_up()
            if view == "feed":
                rows = [{"type": n.type, "version": n.version, **n.data} for n in ledger.feed()]
            elif view == "history":
                rows = [
                    vars(r) for r in ledger.history(at or datetime.now(UTC), start=start, end=end)
                ]
            else:
                rows = [
                    vars(r)
                    for r in ledger.report(
                        axis=axis,
                        period=period or chosen.calendar.period,
                        as_known_at=at,
                        start=start,
                        end=end,
                    )
                ]
            if target is not None:
                drawn = draw(picture_of(ledger, as_known_at=at, start=start, end=end), target)
                output.stderr_console().print(f"drew the books to {drawn}", style="dim")
    if json_output:
        for row in rows:
            output.json_line(row)
        return
    if view == "feed":
        rows = [
            {"version": r["version"], "type": r["type"], "notice": describe_notice(r)} for r in rows
        ]
    _table(rows, f"{chosen.measure.name}: {view}" + _caption(view, axis, at))


def _plot_target(plot: str, view: str, axis: str) -> Path:
    """Checked before anything is read: the file, matplotlib, and a picture that fits."""
    if view != "report" or axis != "occurred":
        raise InvalidInput(
            "--plot draws the report by the day it happened against when it was known; "
            "leave out --view and --axis recorded"
        )
    return check_plot_path(plot)


def _check_plot_period(period: str | None, books: Books) -> None:
    if period is not None and period != books.calendar.period:
        raise InvalidInput(
            f"--plot draws the books' own periods ({books.calendar.period}); "
            f"leave out --period {period}"
        )


def _choose(found: dict[str, Books], name: str | None, app_name: str) -> Books:
    if not found:
        raise InvalidInput(f"the {app_name} application keeps no books (eventbook.Books)")
    if name is None:
        if len(found) > 1:
            raise InvalidInput(f"which books? give --books, one of {', '.join(sorted(found))}")
        return next(iter(found.values()))
    if name not in found:
        raise InvalidInput(f"no books {name!r}; the application keeps {', '.join(sorted(found))}")
    return found[name]


def _caption(view: str, axis: str, at: datetime | None) -> str:
    if view == "feed":
        return ""
    known = f"as known at {at.isoformat()}" if at else "as known now"
    return f" by {axis} time, {known}" if view == "report" else f", {known}"


def _table(rows: list[dict[str, Any]], title: str) -> None:
    console = output.stdout_console()
    if not rows:
        console.print(f"{title}: nothing yet")
        return
    skip = {"measure", "causes", "cause_positions", "advanced_at"}
    columns = [c for c in rows[0] if c not in skip]
    if any("causes" in r for r in rows):
        columns = list(dict.fromkeys(c for r in rows for c in r if c not in skip))
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(column, "")) for column in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    text = str(value)
    return text[:16] if len(text) == 64 else text  # digests, shortened


def describe_notice(n: dict[str, Any]) -> str:
    """A notice in a few words."""
    if n["type"] == "FigurePublished":
        return f"{n['period']}: {n['value']:,} (as known at its end)"
    if n["type"] == "CorrectionIssued":
        causes = len(n["causes"])
        return f"{n['period']}: {n['old']:,} -> {n['new']:,}, caused by {causes} event(s)"
    if n["type"] == "PeriodClosed":
        return f"{n['period']}: sealed at {n['value']:,}, digest {n['digest'][:12]}"
    return f"{n['value']:,} booked into {n['period']}, belongs to {n['belongs_to']} (closed)"
