"""The routes of the HTTP API (see eventbook.http.app for the list): each parses the request,
calls the engine or the store in a worker thread, and answers JSON or problem+json."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from eventbook import limits
from eventbook.core.messages import NewEvent, RecordedEvent
from eventbook.core.validation import check_id_text
from eventbook.engine.folding import Target
from eventbook.errors import EventbookError, StreamNotFound, WrongExpectedVersion
from eventbook.http.console import console_page
from eventbook.http.messages import (
    HttpProblem,
    etag,
    event_json,
    expected_of,
    fold_json,
    int_param,
    json_response,
    outcome_json,
    read_body,
    sse_event,
    status_json,
    time_param,
)
from eventbook.http.openapi import openapi_document
from eventbook.http.problems import problem, problem_of
from eventbook.store.contract import EventStore
from eventbook.temporal import Ledger
from eventbook.temporal.books import books_in

if TYPE_CHECKING:
    from eventbook.http.app import Api


def routes(api: Api) -> list[Route]:
    def handler(role: str | None, fn: Callable[..., Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                actor = api.actor(request, role) if role is not None else "anonymous"
                response = await fn(request, actor)
            except HttpProblem as exc:
                response = exc.response
            except EventbookError as exc:
                response = problem_of(exc)
            route = request.scope.get("route")
            api.requests[(request.method, getattr(route, "path", "?"), response.status_code)] += 1
            return response

        return endpoint

    async def command(request: Request, actor: str) -> Response:
        name = request.path_params["type"]
        cls = api.application.command_types.get(name)
        if cls is None:
            return problem(
                404,
                "unknown-command",
                "Not Found",
                f"the {api.application.name} application has no command {name!r}; it has "
                + ", ".join(sorted(api.application.command_types)),
            )
        data = await read_body(request)
        key = request.headers.get("idempotency-key")
        if key is not None:
            check_id_text(
                key, what="Idempotency-Key", chars_max=limits.http_idempotency_key_chars_max
            )
        if not isinstance(data, dict):
            return problem(
                422, "invalid-command", "Unprocessable Content", f"{name} takes a JSON object"
            )
        try:
            typed = msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            return problem(422, "invalid-command", "Unprocessable Content", f"{name}: {exc}")
        call = partial(api.engine.execute, typed, command_id=key, metadata={"actor": actor})
        outcome = await asyncio.get_running_loop().run_in_executor(api.workers, call)
        api.commands["accepted" if outcome.accepted else "rejected"] += 1
        if not outcome.accepted:
            assert outcome.rejection is not None
            return problem(
                409,
                f"rejected/{outcome.rejection.code}",
                "Rejected",
                outcome.rejection.detail,
                code=outcome.rejection.code,
                command_id=outcome.command_id,
                position=outcome.position if outcome.events else None,
            )
        return json_response(outcome_json(outcome))

    async def read_stream(request: Request, actor: str) -> Response:
        stream = request.path_params["stream"]
        limit = int_param(request, "limit", limits.http_log_count_max, 1)
        limit = min(limit or limits.http_log_count_max, limits.http_log_count_max)
        start = int_param(request, "from_version", None, 1)
        backward = request.query_params.get("backward", "false").lower() in ("1", "true", "yes")

        def read() -> tuple[int, list[RecordedEvent]]:
            version = api.store.stream_version(stream)
            events = list(
                api.store.read_stream(stream, from_version=start, backward=backward, limit=limit)
            )
            return version, events

        version, events = await run_in_threadpool(read)
        if version == 0:
            raise StreamNotFound(stream)
        body = {"stream": stream, "version": version, "events": [event_json(e) for e in events]}
        return json_response(body, headers={"ETag": etag(version)})

    async def append(request: Request, actor: str) -> Response:
        stream = request.path_params["stream"]
        data = await read_body(request)
        items = data.get("events") if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            return problem(
                422,
                "invalid-events",
                "Unprocessable Content",
                'the body is {"events": [{"type": ..., "data": {...}}, ...]} (one or more)',
            )
        try:
            events = [
                NewEvent(stream, **{k: v for k, v in item.items() if k != "stream"})
                for item in items
            ]
            events = [msgspec.convert(msgspec.to_builtins(e), NewEvent) for e in events]
        except (TypeError, AttributeError, msgspec.ValidationError) as exc:
            return problem(
                422,
                "invalid-events",
                "Unprocessable Content",
                f"each event is an object with type, data (and metadata, occurred_at, id): {exc}",
            )
        expected = expected_of(request)
        try:
            result = await run_in_threadpool(
                api.store.append,
                events,
                expected={stream: expected},
                metadata={"actor": actor},
            )
        except WrongExpectedVersion as exc:
            return problem(
                412,
                "precondition-failed",
                "Precondition Failed",
                str(exc),
                stream=stream,
                actual_version=exc.actual,
            )
        version = result.versions[stream]
        body = {
            "stream": stream,
            "version": version,
            "first_position": result.first_position,
            "last_position": result.last_position,
        }
        return json_response(body, 201, headers={"ETag": etag(version)})

    async def log(request: Request, actor: str) -> Response:
        after = int_param(request, "after", 0) or 0
        limit = min(
            int_param(request, "limit", limits.http_log_count_max, 1) or 1,
            limits.http_log_count_max,
        )

        def read() -> tuple[int, list[RecordedEvent]]:
            return api.store.head_position(), list(api.store.read_all(after=after, limit=limit))

        head, events = await run_in_threadpool(read)
        body = {
            "head": head,
            "next": events[-1].position if events else after,
            "events": [event_json(e) for e in events],
        }
        return json_response(body)

    async def subscribe(request: Request, actor: str) -> Response:
        after = int_param(request, "after", 0) or 0
        last = request.headers.get("last-event-id")
        if last is not None:
            if not last.isdigit():
                return problem(400, "invalid-input", "Bad Request", "Last-Event-ID is a position")
            after = int(last)
        return StreamingResponse(
            _events(api, request, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def state(request: Request, actor: str) -> Response:
        stream = request.path_params["stream"]
        target = Target(
            at_version=int_param(request, "at-version"),
            at_position=int_param(request, "at-position"),
            as_of=time_param(request, "as-of"),
            occurred_by=time_param(request, "occurred-by"),
        )
        folded = await run_in_threadpool(api.engine.state, stream, target)
        return json_response(fold_json(folded), headers={"ETag": etag(folded.version)})

    async def read_models(request: Request, actor: str) -> Response:
        runner = api.projections
        if runner is None:
            return json_response({"projections": []})
        wanted = int_param(request, "min-position")
        if wanted is not None:
            ok = await run_in_threadpool(_wait_projections, runner, wanted)
            if not ok:
                return problem(
                    504,
                    "timeout",
                    "Gateway Timeout",
                    f"the read models did not reach position {wanted} in "
                    f"{limits.http_wait_seconds_max} s",
                )
        statuses = await run_in_threadpool(runner.status)
        return json_response({"projections": [status_json(s) for s in statuses]})

    async def health(request: Request, actor: str) -> Response:
        try:
            head = await run_in_threadpool(api.store.head_position)
        except EventbookError as exc:
            return json_response({"status": "unavailable", "store": str(exc)}, 503)
        body: dict[str, Any] = {
            "status": "ok",
            "application": api.application.name,
            "store": {"url": api.store.url, "head_position": head},
        }
        if api.projections is not None:
            statuses = await run_in_threadpool(api.projections.status)
            body["projections"] = [
                {"name": s.name, "lag": s.lag, "status": s.status} for s in statuses
            ]
            if any(s.status == "stopped" for s in statuses):
                body["status"] = "degraded"
        return json_response(body)

    async def metrics(request: Request, actor: str) -> Response:
        head = await run_in_threadpool(api.store.head_position)
        lines = [
            "# HELP eventbook_head_position The position of the last event in the store.",
            "# TYPE eventbook_head_position gauge",
            f"eventbook_head_position {head}",
            "# HELP eventbook_http_requests_total HTTP requests by method, route and status.",
            "# TYPE eventbook_http_requests_total counter",
        ]
        for (method, path, status), count in sorted(api.requests.items()):
            lines.append(
                f'eventbook_http_requests_total{{method="{method}",route="{path}",'
                f'status="{status}"}} {count}'
            )
        lines += [
            "# HELP eventbook_commands_total Commands handled, by outcome.",
            "# TYPE eventbook_commands_total counter",
        ]
        for outcome, count in sorted(api.commands.items()):
            lines.append(f'eventbook_commands_total{{outcome="{outcome}"}} {count}')
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    async def streams(request: Request, actor: str) -> Response:
        limit = min(
            int_param(request, "limit", limits.http_log_count_max, 1) or 1,
            limits.http_log_count_max,
        )
        prefix = request.query_params.get("prefix", "")

        def read() -> list[dict[str, Any]]:
            found = []
            for info in api.store.streams():
                if info.stream.startswith(prefix):
                    found.append(
                        {
                            "stream": info.stream,
                            "version": info.version,
                            "last_position": info.last_position,
                        }
                    )
                    if len(found) >= limit:
                        break
            return found

        return json_response({"streams": await run_in_threadpool(read)})

    async def history(request: Request, actor: str) -> Response:
        stream = request.path_params["stream"]

        def read() -> list[dict[str, Any]]:
            entries = []
            for entry in api.engine.history(stream):
                entries.append(
                    {
                        "position": entry.position,
                        "version": entry.version,
                        "recorded_at": entry.recorded_at,
                        "command": entry.command,
                        "rejection": entry.rejection,
                        "events": [event_json(e) for e in entry.events],
                        "state": msgspec.to_builtins(entry.state),
                    }
                )
                if len(entries) >= limits.http_log_count_max:
                    break
            return entries

        entries = await run_in_threadpool(read)
        if not entries:
            raise StreamNotFound(stream)
        return json_response({"stream": stream, "entries": entries})

    async def books(request: Request, actor: str) -> Response:
        found = books_in(api.application)
        return json_response(
            {
                "books": [
                    {
                        "measure": name,
                        "stream": b.stream,
                        "time_zone": b.calendar.tz,
                        "period": b.calendar.period,
                        "max_lateness_hours": b.calendar.max_lateness.total_seconds() / 3600,
                    }
                    for name, b in sorted(found.items())
                ]
            }
        )

    async def report(request: Request, actor: str) -> Response:
        name = request.path_params["measure"]
        chosen = books_in(api.application).get(name)
        if chosen is None:
            raise StreamNotFound(f"books-{name}")
        view = request.query_params.get("view", "history")
        axis = request.query_params.get("axis", "occurred")
        period = request.query_params.get("period") or chosen.calendar.period
        at = time_param(request, "as-known-at")
        start, end = request.query_params.get("from"), request.query_params.get("to")
        if view not in ("report", "history", "feed"):
            return problem(400, "invalid-input", "Bad Request", "view is report, history or feed")

        def read() -> list[dict[str, Any]]:
            models = api.projections.read_models if api.projections is not None else None
            with Ledger(chosen, api.store, app=api.application, models=models) as ledger:
                ledger.catch_up()
                if view == "feed":
                    return [
                        {"type": n.type, "version": n.version, "position": n.position, **n.data}
                        for n in ledger.feed()
                    ]
                if view == "history":
                    known = at or _known_now(api.store)
                    return [vars(r) for r in ledger.history(known, start=start, end=end)]
                rows = ledger.report(axis=axis, period=period, as_known_at=at, start=start, end=end)
                return [vars(r) for r in rows]

        rows = await run_in_threadpool(read)
        return json_response({"measure": name, "view": view, "rows": rows})

    async def console(request: Request, actor: str) -> Response:
        return Response(console_page(), media_type="text/html; charset=utf-8")

    async def openapi(request: Request, actor: str) -> Response:
        return json_response(openapi_document(api.application))

    return [
        Route("/commands/{type}", handler("write", command), methods=["POST"]),
        Route("/streams/{stream}", handler("read", read_stream), methods=["GET"]),
        Route("/streams/{stream}", handler("write", append), methods=["POST"]),
        Route("/log", handler("read", log), methods=["GET"]),
        Route("/subscribe", handler("read", subscribe), methods=["GET"]),
        Route("/state/{stream}", handler("read", state), methods=["GET"]),
        Route("/read-models", handler("read", read_models), methods=["GET"]),
        Route("/streams", handler("read", streams), methods=["GET"]),
        Route("/history/{stream}", handler("read", history), methods=["GET"]),
        Route("/reports", handler("read", books), methods=["GET"]),
        Route("/reports/{measure}", handler("read", report), methods=["GET"]),
        Route("/console", handler(None, console), methods=["GET"]),
        Route("/health", handler(None, health), methods=["GET"]),
        Route("/metrics", handler("read", metrics), methods=["GET"]),
        Route("/openapi.json", handler(None, openapi), methods=["GET"]),
    ]


def _known_now(store: EventStore) -> datetime:
    """ "As known now": everything recorded, even when a store's clock ran ahead of this one's
    (a story replayed with its own clock)."""
    head = store.head_position()
    last = next(iter(store.read_all(after=head - 1, limit=1)), None) if head else None
    now = datetime.now(UTC)
    return max(now, last.recorded_at) if last is not None else now


def _page(store: EventStore, after: int) -> list[RecordedEvent]:
    return list(store.read_all(after=after, limit=256))


async def _events(api: Api, request: Request, after: int) -> AsyncIterator[bytes]:
    """Server-Sent Events: `id` is the position, so a client that reconnects with
    Last-Event-ID resumes right after the last event it got. At the tail the bytes come from
    the shared buffer (eventbook.http.tail); behind it, from the store."""
    position = after
    quiet_since = time.monotonic()
    api.tail.start()
    while not await request.is_disconnected():
        shared = api.tail.after(position)
        if shared is None:  # behind the buffer: catch up from the store
            events = await run_in_threadpool(_page, api.store, position)
            if events:
                yield b"".join(sse_event(e) for e in events)
                position = events[-1].position
                quiet_since = time.monotonic()
                continue
        elif shared[0]:
            yield shared[0]
            position = shared[1]
            quiet_since = time.monotonic()
            continue
        await api.tail.wait(position, 1.0)
        if time.monotonic() - quiet_since > limits.http_sse_heartbeat_seconds:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()


def _wait_projections(runner: Any, position: int) -> bool:
    deadline = time.monotonic() + limits.http_wait_seconds_max
    while time.monotonic() < deadline:
        if all(runner.position(p.name) >= position for p in runner.app.projections):
            return True
        time.sleep(0.01)
    return False
