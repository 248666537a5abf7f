"""Options shared by several commands, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL for this command (overrides the global --store / EVENTBOOK_STORE).",
        show_default=False,
        metavar="URL",
    ),
]

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Write one JSON object per line instead of a table."),
]

AfterOption = Annotated[
    int,
    typer.Option(
        "--from",
        "--after",
        min=0,
        metavar="P",
        help="Start after global position P (0: from the first event).",
    ),
]
