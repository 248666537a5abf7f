"""The read-only commands: read, log, streams, stats, tail.

Each opens the store read-only (so it works while another process writes) and streams its
output: nothing here lists a whole stream or log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer
from rich.markup import escape

from eventbook.cli import output
from eventbook.cli.options import AfterOption, JsonOption, StoreOption
from eventbook.cli.stores import open_for_reading, store_url
from eventbook.core.messages import RecordedEvent

LimitOption = Annotated[
    int | None,
    typer.Option("--limit", "-n", min=0, metavar="N", help="Show at most N events."),
]


def read(
    ctx: typer.Context,
    stream: Annotated[str, typer.Argument(help="Stream id, such as account-42.")],
    backward: Annotated[
        bool, typer.Option("--backward", "-b", help="Newest first (from the last version down).")
    ] = False,
    from_version: Annotated[
        int | None,
        typer.Option(
            "--from-version",
            min=1,
            metavar="V",
            help="Start at version V (forward: V and later; backward: V and earlier).",
        ),
    ] = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Print the events of one stream, in version order."""
    with open_for_reading(store_url(ctx, store)) as opened:
        events = opened.read_stream(
            stream, backward=backward, from_version=from_version, limit=limit
        )
        shown = _print_events(events, as_json=as_json, with_stream=False)
    if not shown and not as_json:
        output.stderr_console().print(f"no events in stream {stream!r}", style="dim", markup=False)


def log(
    ctx: typer.Context,
    after: AfterOption = 0,
    limit: LimitOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Print the global log: every event of every stream, in position order."""
    with open_for_reading(store_url(ctx, store)) as opened:
        shown = _print_events(
            opened.read_all(after=after, limit=limit), as_json=as_json, with_stream=True
        )
    if not shown and not as_json:
        output.stderr_console().print(f"no events after position {after}", style="dim")


def streams(
    ctx: typer.Context,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """List every stream with its version and the position of its last event."""
    with open_for_reading(store_url(ctx, store)) as opened:
        if as_json:
            for info in opened.streams():
                output.json_line(info)
            return
        table = output.TableWriter(
            output.stdout_console(),
            [
                output.Column("stream", width_min=6, width_max=80, style="cyan"),
                output.Column("version", "right", 7, 20),
                output.Column("last position", "right", 13, 20),
            ],
        )
        for info in opened.streams():
            table.add(info.stream, info.version, info.last_position)
        if not table.close():
            output.stderr_console().print("no streams yet", style="dim")


def stats(
    ctx: typer.Context,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Print the store's figures: head position, counts, sizes (depending on the backend)."""
    with open_for_reading(store_url(ctx, store)) as opened:
        figures = opened.stats()
    if as_json:
        output.json_line(figures)
    else:
        rows = [(str(key), value) for key, value in figures.items()]
        output.stdout_console().print(output.key_value_table(rows, ("stat", "value")))


def tail(
    ctx: typer.Context,
    after: Annotated[
        int | None,
        typer.Option(
            "--from",
            "--after",
            min=0,
            metavar="P",
            help="Start after global position P (default: the current head: new events only).",
            show_default=False,
        ),
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout",
            min=0.0,
            metavar="S",
            help="Stop after S seconds without a new event (default: follow until Ctrl-C).",
        ),
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Follow the global log live, printing each event as it is appended. Ctrl-C stops."""
    try:
        with open_for_reading(store_url(ctx, store)) as opened:
            start = opened.head_position() if after is None else after
            if not as_json:
                output.stderr_console().print(
                    f"following {escape(opened.url)} after position {start}; Ctrl-C to stop",
                    style="dim",
                )
            with opened.subscribe(after=start, idle_timeout=idle_timeout) as subscription:
                for event in subscription:
                    if as_json:
                        output.json_line(output.event_dict(event), flush=True)
                    else:
                        _print_event_line(event)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one stops following: not an error, exit 0


def _print_events(events: Iterable[RecordedEvent], *, as_json: bool, with_stream: bool) -> int:
    """Print events as they are read; return how many."""
    if as_json:
        count = 0
        for event in events:
            output.json_line(output.event_dict(event))
            count += 1
        return count
    console = output.stdout_console()
    times = output.event_times(console)
    table = output.TableWriter(console, output.event_columns(with_stream=with_stream, times=times))
    for event in events:
        table.add(*output.event_cells(event, with_stream=with_stream, times=times))
    return table.close()


def _print_event_line(event: RecordedEvent) -> None:
    console = output.stdout_console()
    console.print(
        f"[bold]{event.position}[/] [cyan]{escape(event.stream)}[/] v{event.version} "
        f"[green]{escape(event.type)}[/] {output.human_time(event.recorded_at)} "
        f"{escape(output.short_json(event.data))}",
        soft_wrap=True,
    )
    console.file.flush()
