"""`eventbook demo retail` and `demo retail-week`: seed 000's stories on the retail books.

The story runs on its own clock (the store's recorded times and the engine's `now` are the
story's), so "as known at midnight" means the story's midnight. After each step the books
advance and the demo prints the three views of the seed: (1) the live figure as received
today, (2) the daily history by when sales happened (restated until a day closes), (3) the
notices the step raised (figures published, corrections, closes, adjustments). Every sale has
a command id and every view is asked "as known at" the step's time, so a second run on the
same store writes nothing and prints the same story.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table

import eventbook as eb
from eventbook.cli import output
from eventbook.cli.apps import remember_app
from eventbook.cli.reports import describe_notice
from eventbook.errors import InvalidInput
from eventbook.examples import retail as example
from eventbook.store import registry
from eventbook.temporal.drawing import check_plot_path, draw
from eventbook.temporal.picture import picture_of

APP_PATH = "eventbook.examples.retail:app"


class StoryClock:
    """The story's time: the store records and the engine decides at the current step."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def retail(url: str, *, json_output: bool = False, plot: str | None = None) -> None:
    """The first story: 09:00 a shop sale of 2,000 uploaded at 02:00 the next day, 10:00 and
    12:00 online sales of 1,000 and 1,200."""
    _play(url, example.FIRST_STORY, example.DAY, "seed 000: one day", json_output, plot)


def retail_week(url: str, *, json_output: bool = False, plot: str | None = None) -> None:
    """The week: Monday's shop total (3,500,000) arrives on Thursday, after three daily
    reports; a Monday receipt arriving Saturday, after Monday closed, is an adjustment."""
    _play(url, example.WEEK_STORY, example.WEEK[0], "seed 000: the week", json_output, plot)


def _play(
    url: str,
    story: list[example.Step],
    day: str,
    title: str,
    json_output: bool,
    plot: str | None,
) -> None:
    target = check_plot_path(plot) if plot is not None else None  # before anything is written
    if registry.is_server_url(url):
        raise InvalidInput(
            "demo retail plays the story on its own clock, which a server store does not "
            "take: give a directory or memory://"
        )
    console = output.stdout_console()
    clock = StoryClock(story[0].at)
    with (
        registry.open_store(url, clock=clock) as store,
        eb.Ledger(example.books, store, app=example.app) as ledger,
    ):
        remember_app(store, APP_PATH)
        engine = eb.Engine(example.app, store, clock=clock)
        if not json_output:
            console.print(f"[bold]eventbook demo retail[/]: {title}, on {store.url}")
            hours = int(example.calendar.max_lateness.total_seconds() // 3600)
            console.print(
                f"business days in {example.calendar.tz}, closed {hours} hours after they end\n"
            )
        for step in story:
            clock.now = step.at
            example.record(engine, step)
            ledger.advance(step.at)
            shown = _step(ledger, step)
            if json_output:
                output.json_line(shown)
            else:
                _print_step(console, shown)
        summary = _summary(ledger, day, store.url)
        if target is not None:
            drawn = draw(picture_of(ledger, as_known_at=story[-1].at), target)
            output.stderr_console().print(f"drew the books to {drawn}", style="dim")
        if json_output:
            output.json_line(summary)
        else:
            _print_end(console, summary)


def _step(ledger: eb.Ledger, step: example.Step) -> dict[str, Any]:
    live = ledger.live(step.at)
    at = step.at.astimezone(example.TAIPEI)
    notices = [
        {"type": n.type, **_notice(n.data)}
        for n in ledger.feed()
        if datetime.fromisoformat(n.data["advanced_at"]) == step.at
    ]
    return {
        "step": step.title,
        "at": at.isoformat(),
        "live": {
            "day": live.period,
            "received": live.value,
            "received_count": live.count,
            "of_which_earlier_days": live.late_value,
        },
        "history": [
            {
                "day": r.period,
                "value": r.value,
                "count": r.count,
                "status": r.status,
                "adjustments": r.adjustments_value,
            }
            for r in ledger.history(step.at)
        ],
        "notices": notices,
    }


def _notice(data: dict[str, Any]) -> dict[str, Any]:
    skip = {"measure", "advanced_at", "through_position", "cause_positions", "causes_count"}
    return {k: v for k, v in data.items() if k not in skip}


def _summary(ledger: eb.Ledger, day: str, url: str) -> dict[str, Any]:
    calendar = ledger.calendar
    known_now = ledger.report(axis="occurred", start=day, end=day)
    at_end = ledger.report(axis="occurred", start=day, end=day, as_known_at=calendar.end(day))
    corrections = [
        {
            "day": c.period,
            "period": c.period,
            "old": c.old,
            "new": c.new,
            "causes": c.causes,
            "as_known_at": c.as_known_at,
        }
        for c in ledger.corrections()
    ]
    closed = [
        {"day": n.data["period"], "value": n.data["value"], "digest": n.data["digest"]}
        for n in ledger.feed()
        if n.type == "PeriodClosed"
    ]
    adjustments = [
        {k: n.data[k] for k in ("period", "belongs_to", "value", "causes")}
        for n in ledger.feed()
        if n.type == "AdjustmentBooked"
    ]
    return {
        "day": day,
        "tz": calendar.tz,
        "as_happened": known_now[0].value if known_now else 0,
        "as_known_at_end_of_day": at_end[0].value if at_end else 0,
        "corrections": corrections,
        "closed": closed,
        "adjustments": adjustments,
        "store": url,
    }


def _print_step(console: Any, shown: dict[str, Any]) -> None:
    live = shown["live"]
    console.print(f"[bold]{shown['at'][:16].replace('T', ' ')}[/]  {shown['step']}")
    late = live["of_which_earlier_days"]
    console.print(
        f"  (1) live, received on {live['day']}: [bold]{live['received']:,}[/]"
        + (f" (of which {late:,} happened on earlier days)" if late else "")
    )
    if shown["history"]:
        table = Table(title="  (2) by the day it happened", title_justify="left")
        for column in ("day", "value", "sales", "status", "adjustments"):
            table.add_column(column, justify="left" if column in ("day", "status") else "right")
        for r in shown["history"]:
            table.add_row(
                r["day"],
                f"{r['value']:,}",
                str(r["count"]),
                r["status"],
                f"{r['adjustments']:,}" if r["adjustments"] else "",
            )
        console.print(table)
    for n in shown["notices"]:
        console.print(f"  (3) [yellow]{n['type']}[/] {describe_notice(n)}")
    console.print()


def _print_end(console: Any, summary: dict[str, Any]) -> None:
    console.print(
        f"[bold]{summary['day']}[/]: as it happened {summary['as_happened']:,}; as known at the "
        f"end of the day {summary['as_known_at_end_of_day']:,}; corrections: "
        + (
            ", ".join(f"{c['day']} {c['old']:,} -> {c['new']:,}" for c in summary["corrections"])
            or "none"
        )
    )
    console.print(
        f"\nTry: eventbook --store {summary['store']} report --as-known-at "
        f"{summary['day']}T23:59:59+08:00 | report --axis recorded | report --view feed"
    )
