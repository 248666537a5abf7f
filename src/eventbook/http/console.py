"""The web console: one HTML page with a small script (no build step), served at /console.
It uses the API itself: streams, a stream's passbook (its history with the state after each
command), a command form made from the OpenAPI document, the live log (Server-Sent Events) and
the projections' status. A token, when the server needs one, is kept in the tab's session."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def console_page() -> bytes:
    return resources.files("eventbook.http").joinpath("static/console.html").read_bytes()


__all__ = ["console_page"]
