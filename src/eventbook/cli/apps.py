"""Which application a command runs: `--app module:attribute` (as uvicorn names apps).

`run` and `demo` remember the application in the store (its snapshot table's settings), so
`state`, `history`, `snapshot`, `replay` and `upcast` find it again without `--app`.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from eventbook.engine.model import Application
from eventbook.errors import InvalidInput
from eventbook.store.contract import EventStore

APP_META = "app"
EXAMPLE = "eventbook.examples.bank:app"

AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        envvar="EVENTBOOK_APP",
        metavar="MODULE:ATTR",
        help=f"The application, as module:attribute (e.g. {EXAMPLE}); default: the one last "
        "run on this store.",
        show_default=False,
    ),
]


def load_app(path: str) -> Application:
    """Import `module:attribute` and check it is an eventbook Application."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidInput(f"--app {path!r} must be module:attribute, for example {EXAMPLE}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise InvalidInput(
            f"--app {path!r}: no module named {error.name!r} can be imported (is it installed, "
            "or on PYTHONPATH?)"
        ) from None
    except Exception as error:  # the user's module failed while importing: say how
        raise InvalidInput(
            f"--app {path!r}: importing {module_name} failed: {type(error).__name__}: {error}"
        ) from None
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise InvalidInput(
                f"--app {path!r}: module {module_name} has no attribute {attribute!r}"
            ) from None
    if not isinstance(found, Application):
        raise InvalidInput(
            f"--app {path!r} is a {type(found).__name__}, not an eventbook.Application"
        )
    return found


def resolve_app(store: EventStore, given: str | None) -> tuple[str, Application]:
    """The application named by --app, else the one remembered by the store."""
    path = given or store.snapshots().get_meta(APP_META)
    if not path:
        raise InvalidInput(
            "which application? give --app module:attribute (for example "
            f"--app {EXAMPLE}) or set EVENTBOOK_APP; this store has not run one yet"
        )
    return path, load_app(path)


def remember_app(store: EventStore, path: str) -> None:
    if store.snapshots().get_meta(APP_META) != path:
        store.snapshots().set_meta(APP_META, path)
