"""The HTTP API: an eventbook application and its store over the network (Starlette).

    from eventbook.http import create_app
    api = create_app(bank.app, eventbook.open_store("./bank"), tokens=TokenStore("tokens.json"))
    uvicorn.run(api, port=8000)          # or: eventbook serve --app eventbook.examples.bank:app

Routes (docs/http.md has them all, with curl examples; /openapi.json describes them):
  POST /commands/{type}          a command (Idempotency-Key: its command id)
  GET  /streams/{id}             a stream's events, its version as ETag
  POST /streams/{id}             append events; If-Match: the expected version
  GET  /log?after=P              the global log
  GET  /subscribe?after=P        Server-Sent Events, resumable with Last-Event-ID
  GET  /state/{stream}           the time machine: ?at-version | at-position | as-of | occurred-by
  GET  /read-models              projection status; ?min-position=P waits (read your writes)
  GET  /health, /metrics         health (no token needed) and Prometheus text
Every route but /health and /openapi.json needs a token (`Authorization: Bearer ...`) unless
the server runs without auth: `read` for GET, `write` for POST. Errors are problem+json.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request

from eventbook import limits
from eventbook.engine.engine import Engine
from eventbook.engine.model import Application
from eventbook.errors import (
    InvalidInput,
)
from eventbook.http.messages import HttpProblem, sse_event
from eventbook.http.problems import problem
from eventbook.http.routes import routes
from eventbook.http.tail import Tail
from eventbook.http.tokens import TokenRecord, TokenStore
from eventbook.store.contract import EventStore

_json = msgspec.json.Encoder()
JSON = "application/json"


class Api:
    """The state the routes share: the application, its engine and store, tokens, counters."""

    def __init__(
        self,
        application: Application,
        store: EventStore,
        tokens: TokenStore | None,
        engine: Engine | None = None,
        projections: Any = None,
    ) -> None:
        self.application = application
        self.store = store
        self.engine = engine or Engine(application, store)
        self.tokens = tokens
        self.projections = projections  # a ProjectionRunner, when the server keeps them
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.commands: Counter[str] = Counter()
        self.tail = Tail(store, sse_event)
        # commands wait for their commit's fsync in these threads (group commit shares it)
        self.workers = ThreadPoolExecutor(limits.http_command_threads, "eventbook-command")

    # -- access -----------------------------------------------------------------------------

    def actor(self, request: Request, role: str) -> str:
        if self.tokens is None:
            return "anonymous"
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header and request.method == "GET" and "access_token" in request.query_params:
            # a browser's EventSource cannot send headers: GETs may carry the token here
            scheme, token = "bearer", request.query_params["access_token"]
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpProblem(
                problem(
                    401,
                    "unauthorized",
                    "Unauthorized",
                    "send a token: Authorization: Bearer <token> (eventbook tokens create)",
                )
            )
        record: TokenRecord | None = self.tokens.check(token.strip())
        if record is None or record.revoked_at is not None:
            raise HttpProblem(
                problem(401, "unauthorized", "Unauthorized", "the token is unknown or revoked")
            )
        if not record.allows(role):
            raise HttpProblem(
                problem(
                    403,
                    "forbidden",
                    "Forbidden",
                    f"token {record.name!r} has role {record.role!r}; this needs {role!r}",
                )
            )
        return record.name


def create_app(
    application: Application,
    store: EventStore,
    *,
    tokens: TokenStore | None,
    engine: Engine | None = None,
    projections: Any = None,
) -> Starlette:
    """The API of `application` over `store`. `tokens=None` serves without authentication
    (local use only: `eventbook serve --no-auth`)."""
    if not isinstance(application, Application):
        raise InvalidInput(f"create_app serves an eventbook Application, got {application!r}")
    api = Api(application, store, tokens, engine, projections)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        api.tail.stop()

    app = Starlette(routes=routes(api), lifespan=lifespan)
    app.state.api = api
    return app


__all__ = ["Api", "create_app"]
