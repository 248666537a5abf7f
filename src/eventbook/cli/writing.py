"""`eventbook append`: one event, one commit."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from eventbook.cli import inputs, output
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.stores import open_for_writing, store_url
from eventbook.core.messages import AppendResult, NewEvent


def append(
    ctx: typer.Context,
    stream: Annotated[str, typer.Argument(help="Stream id, such as account-42.")],
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Event type name, such as Deposited.")
    ],
    data: Annotated[
        str, typer.Argument(metavar="JSON", help="Event data: a JSON object, or - to read stdin.")
    ],
    expected_version: Annotated[
        str | None,
        typer.Option(
            "--expected-version",
            "-e",
            metavar="N|any|no-stream|exists",
            help="Append only if the stream is at this version (default: any).",
            show_default=False,
        ),
    ] = None,
    commit_id: Annotated[
        str | None,
        typer.Option(
            "--commit-id",
            metavar="ID",
            help="Idempotency key: the same id again returns the first result, writes nothing.",
        ),
    ] = None,
    occurred_at: Annotated[
        str | None,
        typer.Option(
            "--occurred-at",
            metavar="ISO",
            help="When it happened in the world, ISO 8601 with a zone (default: now).",
        ),
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option("--metadata", metavar="JSON", help="Event metadata: a JSON object."),
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Append one event to a stream, atomically, and print its position and version."""
    when = None if occurred_at is None else inputs.parse_time(occurred_at, what="--occurred-at")
    event = NewEvent(
        stream,
        event_type,
        inputs.parse_json_object(data, what="the JSON argument (event data)"),
        {} if metadata is None else inputs.parse_json_object(metadata, what="--metadata"),
        occurred_at=when,
    )
    expected = None
    if expected_version is not None:
        expected = {stream: inputs.parse_expected_version(expected_version, stream=stream)}
    with open_for_writing(store_url(ctx, store)) as opened:
        result = opened.append([event], expected=expected, commit_id=commit_id)
    if as_json:
        output.json_line(result)
    else:
        _print_result(stream, result)


def _print_result(stream: str, result: AppendResult) -> None:
    version = result.versions.get(stream)
    line = (
        f"appended to [cyan]{escape(stream)}[/]: position {result.first_position}, "
        f"version {version}"
    )
    details = []
    if result.commit_id is not None:
        details.append(f"commit {escape(result.commit_id)}")
    if result.recorded_at is not None:
        details.append(f"recorded at {output.human_time(result.recorded_at)}")
    if details:
        line += " (" + ", ".join(details) + ")"
    output.stdout_console().print(line, soft_wrap=True)
