"""`eventbook projections list | status | run | rebuild NAME | reset NAME`: the query side.

The store is opened read-only (projections only read the log, so this works while another
process writes); the read models are written: the SQLite file beside the store's files, and
Redis when a projection needs it (`--redis URL` or EVENTBOOK_REDIS_URL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Annotated, Any

import typer
from rich.markup import escape

from eventbook.cli import output
from eventbook.cli.apps import AppOption, resolve_app
from eventbook.cli.errors import EXIT_CONFLICT
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.progress import ProgressBar
from eventbook.cli.stores import open_for_reading, store_url
from eventbook.projections.model import ProjectionStatus
from eventbook.projections.runner import ProjectionRunner
from eventbook.read_models import open_read_models

projections_app = typer.Typer(
    name="projections",
    help="Projections: the read models kept from the log (list, status, run, rebuild, reset).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

RedisOption = Annotated[
    str | None,
    typer.Option(
        "--redis",
        envvar="EVENTBOOK_REDIS_URL",
        metavar="URL",
        help="Redis URL for projections kept in Redis (redis://host:port/db).",
        show_default=False,
    ),
]


@contextmanager
def _runner(
    ctx: typer.Context, store: str | None, app: str | None, redis: str | None
) -> Iterator[ProjectionRunner]:
    with open_for_reading(store_url(ctx, store)) as opened:
        _, application = resolve_app(opened, app)
        kinds = {p.target for p in application.projections}
        extra: dict[str, Any] = {"redis": redis} if redis else {}
        models = open_read_models(opened, kinds, **extra)
        try:
            yield ProjectionRunner(opened, application, models)
        finally:
            for model in set(models.values()):
                model.close()


@projections_app.command("list")
def list_projections(
    ctx: typer.Context,
    app: AppOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """List the application's projections: name, version, target, event types handled."""
    with open_for_reading(store_url(ctx, store)) as opened:
        _, application = resolve_app(opened, app)
    rows = [
        {
            "name": p.name,
            "version": p.version,
            "target": p.target,
            "handles": sorted(p.handles),
            "tables": sorted(p.tables),
        }
        for p in application.projections
    ]
    if as_json:
        for row in rows:
            output.json_line(row)
        return
    table = output.TableWriter(
        output.stdout_console(),
        [
            output.Column("name", width_min=4, width_max=30, style="cyan"),
            output.Column("version", "right", 7, 8),
            output.Column("target", width_min=6, width_max=8),
            output.Column("handles", width_min=10),
        ],
    )
    for row in rows:
        table.add(row["name"], row["version"], row["target"], ", ".join(row["handles"]) or "all")
    if not table.close():
        output.stderr_console().print("this application declares no projections", style="dim")


def _status_dict(s: ProjectionStatus) -> dict[str, Any]:
    return {
        "name": s.name,
        "version": s.version,
        "target": s.target,
        "position": s.position,
        "lag": s.lag,
        "lag_seconds": round(s.lag_seconds, 3),
        "status": s.status,
        "error": s.error or None,
        "failed_position": s.failed_position or None,
        "rebuilding": None
        if s.rebuilding is None
        else {"version": s.rebuilding.version, "position": s.rebuilding.position},
    }


@projections_app.command()
def status(
    ctx: typer.Context,
    app: AppOption = None,
    redis: RedisOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Each projection's checkpoint, lag (events and seconds behind the head) and state; a
    stopped projection shows the failing position and error. Exit 1 if any is stopped."""
    with _runner(ctx, store, app, redis) as runner:
        found = runner.status()
    if as_json:
        for s in found:
            output.json_line(_status_dict(s))
    else:
        table = output.TableWriter(
            output.stdout_console(),
            [
                output.Column("name", width_min=4, width_max=30, style="cyan"),
                output.Column("version", "right", 7, 8),
                output.Column("position", "right", 8, 14),
                output.Column("lag", "right", 3, 14),
                output.Column("lag s", "right", 5, 10),
                output.Column("status", width_min=6, width_max=12),
                output.Column("error", width_min=5),
            ],
        )
        for s in found:
            error = f"at {s.failed_position}: {s.error}" if s.error else ""
            table.add(
                s.name,
                s.version,
                s.position,
                s.lag,
                f"{s.lag_seconds:.1f}",
                s.status,
                error,
                style="red" if s.status == "stopped" else None,
            )
        table.close()
    if any(s.status == "stopped" for s in found):
        raise typer.Exit(EXIT_CONFLICT)


@projections_app.command()
def rebuild(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The projection to rebuild.")],
    app: AppOption = None,
    redis: RedisOption = None,
    store: StoreOption = None,
) -> None:
    """Rebuild a projection from position 0 into a new generation while the current one keeps
    serving, then switch to it (blue/green). Shows progress with events/s and ETA."""
    bar = ProgressBar(f"rebuilding {name}")
    started = time.monotonic()
    with _runner(ctx, store, app, redis) as runner:
        runner.projection(name)  # an unknown name fails before anything is made
        try:
            generation = runner.rebuild(name, progress=bar)
        finally:
            bar.close()
    took = time.monotonic() - started
    output.stdout_console().print(
        f"rebuilt {escape(name)} to position {generation.position} in {took:.2f} s "
        f"({generation.position / max(took, 1e-9):,.0f} events/s); generation "
        f"{generation.generation} is serving"
    )


@projections_app.command()
def reset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The projection to reset.")],
    app: AppOption = None,
    redis: RedisOption = None,
    store: StoreOption = None,
) -> None:
    """Drop a projection's read model and checkpoint (and a stop): the next run builds it
    again from position 0."""
    with _runner(ctx, store, app, redis) as runner:
        runner.projection(name)
        runner.reset(name)
    output.stdout_console().print(f"reset {escape(name)}: it starts again from position 0")


@projections_app.command()
def run(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep following new events (Ctrl-C stops).")
    ] = False,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout",
            min=0.0,
            metavar="S",
            help="With --follow: stop after S seconds without a new event.",
        ),
    ] = None,
    app: AppOption = None,
    redis: RedisOption = None,
    store: StoreOption = None,
) -> None:
    """Bring every projection up to the head (and with --follow keep them up to date)."""
    bar = ProgressBar("catching up")
    with _runner(ctx, store, app, redis) as runner:
        try:
            applied = runner.catch_up(progress=bar)
        finally:
            bar.close()
        console = output.stdout_console()
        console.print(f"applied {applied} events; head {runner.store.head_position()}")
        if follow:
            with suppress(KeyboardInterrupt):
                _follow(runner, idle_timeout)
        stopped = [s for s in runner.status() if s.status == "stopped"]
    for s in stopped:
        output.stderr_console().print(
            f"[red]stopped[/] {escape(s.name)} at position {s.failed_position}: {escape(s.error)}"
        )
    if stopped:
        raise typer.Exit(EXIT_CONFLICT)


def _follow(runner: ProjectionRunner, idle_timeout: float | None) -> None:
    last_change = time.monotonic()
    seen = runner.store.head_position()
    while idle_timeout is None or time.monotonic() - last_change < idle_timeout:
        runner.store.wait_for_append(seen, 0.2)
        head = runner.store.head_position()
        if head != seen:
            runner.catch_up()
            seen = head
            last_change = time.monotonic()
