"""From exceptions to exit codes: the one place the CLI decides how a failure ends.

    0  ok
    1  conflict or rejection        WrongExpectedVersion, DuplicateCommit, ...
    2  invalid input or usage       InvalidInput, bad options (click exits 2 itself)
    3  store damaged or locked      StoreCorrupted, StoreLocked, StoreFailed, ...

Every `EventbookError` carries its `exit_code`; its message is printed in red on stderr,
without a traceback (it is a user's or the disk's doing, not a bug). Any other exception is
a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from eventbook.errors import EventbookError

EXIT_OK = 0
EXIT_CONFLICT = 1
EXIT_INVALID = 2
EXIT_DAMAGED = 3


def exit_code_of(error: EventbookError) -> int:
    code = getattr(error, "exit_code", EXIT_INVALID)
    return code if isinstance(code, int) and code > 0 else EXIT_INVALID


def show_error(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(
        f"error: {message}", style="red", markup=False, highlight=False
    )


class EventbookGroup(TyperGroup):
    """The app's click group: every command runs inside this error mapping."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EventbookError as error:
            show_error(error.message)
            raise typer.Exit(exit_code_of(error)) from None
