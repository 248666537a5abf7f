"""`eventbook relay`: publish the store's events to NATS JetStream with the outbox relay.

The store is opened read-only (the relay runs beside the writer). Without `--checkpoint`, the
checkpoint is a file beside an embedded store's directory (`DIR.relay-STREAM.checkpoint`), or
`./relay-STREAM.checkpoint` for a server's store. Progress goes to stderr; Ctrl-C stops after
the batch in flight and saves the checkpoint (exit 0).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlparse

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from eventbook.cli.options import StoreOption
from eventbook.cli.stores import open_for_reading, store_url
from eventbook.outbox import NatsBroker, Relay, RelayStatus
from eventbook.outbox.broker import DEFAULT_PREFIX
from eventbook.outbox.nats_broker import DEFAULT_STREAM
from eventbook.store import registry


def default_checkpoint(url: str, stream: str) -> Path:
    """Beside an embedded store's directory (`DIR.relay-STREAM.checkpoint`: one per store and
    broker stream, outside the store's own files); `./relay-STREAM.checkpoint` otherwise."""
    name = f"relay-{stream}.checkpoint"
    if url.startswith("memory:") or registry.is_server_url(url):
        return Path(name)
    if url.startswith("file:"):
        parsed = urlparse(url)
        url = unquote(parsed.netloc + parsed.path)
    folder = Path(url).resolve()
    return folder.with_name(f"{folder.name}.{name}")


class _Shown:
    """The relay's progress on stderr: a bar from where it started to the head."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.began = time.monotonic()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("relaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.progress.add_task("relay", total=None, note="")

    def __call__(self, status: RelayStatus) -> None:
        elapsed = max(time.monotonic() - self.began, 1e-9)
        done = status.position - self.start
        note = f"{done / elapsed:,.0f} events/s, position {status.position:,}"
        if status.error:
            note += f" [red]retrying: {escape(status.error)}[/]"
        self.progress.update(
            self.task, completed=done, total=max(status.head - self.start, done), note=note
        )

    def __enter__(self) -> _Shown:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def relay(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="URL",
            help="The NATS server: nats://HOST:PORT (several comma-separated for a cluster).",
        ),
    ],
    stream: Annotated[
        str, typer.Option("--stream", metavar="NAME", help="The JetStream stream to publish to.")
    ] = DEFAULT_STREAM,
    subject_prefix: Annotated[
        str,
        typer.Option(
            "--subject-prefix",
            metavar="PREFIX",
            help="Subjects are PREFIX.CATEGORY (the stream holds PREFIX.>).",
        ),
    ] = DEFAULT_PREFIX,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            metavar="FILE",
            help="Where the relay keeps its position (default: DIR.relay-STREAM.checkpoint "
            "beside an embedded store DIR, else ./relay-STREAM.checkpoint).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Publish everything up to the current head, then exit."),
    ] = False,
    store: StoreOption = None,
) -> None:
    """Publish every event of the store to NATS JetStream (subject PREFIX.CATEGORY, message id
    = event id), at least once, in order, resuming from a checkpoint file. Follows the log
    until Ctrl-C; `--once` stops at the head."""
    url = store_url(ctx, store)
    path = checkpoint if checkpoint is not None else default_checkpoint(url, stream)
    err = Console(stderr=True, soft_wrap=True)
    with open_for_reading(url) as opened:
        broker = NatsBroker(to, stream=stream, subject_prefix=subject_prefix)
        try:
            runner = Relay(opened, broker, path)
            start = runner.position
            if not once:
                err.print(
                    f"relaying {escape(opened.url)} to {stream} on {escape(broker.where)} from "
                    f"position {start} (checkpoint {escape(str(path))}); Ctrl-C to stop",
                    style="dim",
                )
            try:
                with _Shown(start) as shown:
                    if once:
                        runner.catch_up(shown)
                    else:
                        runner.run(shown)
            except KeyboardInterrupt:
                runner.stop()  # saves the checkpoint: Ctrl-C is how one stops following
            err.print(
                f"published {runner.position - start:,} events to {stream} on "
                f"{escape(broker.where)}; the checkpoint {escape(str(path))} is at position "
                f"{runner.saved:,}",
                style="dim",
            )
        finally:
            broker.close()
