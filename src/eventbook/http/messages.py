"""What the routes share: JSON bodies (msgspec), bounded request bodies, query parameters,
ETags and If-Match, and the JSON shapes of events, outcomes and states."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from eventbook import limits
from eventbook.core.messages import RecordedEvent
from eventbook.engine.engine import Outcome
from eventbook.engine.folding import Folded
from eventbook.http.problems import problem
from eventbook.store.expected import ANY, EXISTS, NO_STREAM

ENCODER = msgspec.json.Encoder()
JSON = "application/json"


class HttpProblem(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(ENCODER.encode(body), status, headers, media_type=JSON)


def event_json(rec: RecordedEvent) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in rec.__struct_fields__}


async def read_body(request: Request) -> Any:
    """The JSON body, bounded: 413 over the limit, 400 when it is not JSON."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.http_body_bytes_max:
        raise HttpProblem(_too_large())
    if length is not None and length.isdigit():
        body = await request.body()  # bounded by the length checked above
    else:  # chunked: count as it comes
        received = bytearray()
        async for chunk in request.stream():
            received += chunk
            if len(received) > limits.http_body_bytes_max:
                raise HttpProblem(_too_large())
        body = bytes(received)
    if len(body) > limits.http_body_bytes_max:
        raise HttpProblem(_too_large())
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise HttpProblem(
            problem(400, "malformed-json", "Malformed JSON", f"the body is not JSON: {exc}")
        ) from None


def _too_large() -> Response:
    return problem(
        413,
        "too-large",
        "Payload Too Large",
        f"a request body holds at most {limits.http_body_bytes_max} bytes",
    )


def int_param(request: Request, name: str, default: int | None = None, low: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < low:
        raise HttpProblem(
            problem(400, "invalid-input", "Bad Request", f"{name} must be an integer >= {low}")
        )
    return int(raw)


def time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    # an unencoded "+08:00" in a query string arrives as " 08:00"
    raw = re.sub(r" (\d{2}:?\d{2})$", r"+\1", raw)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise HttpProblem(
            problem(
                400,
                "invalid-input",
                "Bad Request",
                f"{name} must be an ISO 8601 time with a time zone, got {raw!r}",
            )
        )
    return value


def etag(version: int) -> str:
    return f'"{version}"'


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "command_id": outcome.command_id,
        "command": outcome.command_type,
        "accepted": outcome.accepted,
        "duplicate": outcome.duplicate,
        "position": outcome.position,
        "events": [event_json(e) for e in outcome.events],
    }


def fold_json(folded: Folded) -> dict[str, Any]:
    state = msgspec.to_builtins(folded.state)
    fields = state if isinstance(state, dict) else {"state": state}
    return {
        **fields,
        "_meta": {
            "stream": folded.stream,
            "version": folded.version,
            "position": folded.position,
            "recorded_at": folded.recorded_at,
            "events_folded": folded.folded,
        },
    }


# -- routes ---------------------------------------------------------------------------------------


def expected_of(request: Request) -> object:
    match = request.headers.get("if-match")
    none_match = request.headers.get("if-none-match")
    if none_match is not None:
        if none_match.strip() != "*":
            raise HttpProblem(
                problem(400, "invalid-input", "Bad Request", 'If-None-Match takes only "*"')
            )
        return NO_STREAM
    if match is None:
        return ANY
    match = match.strip()
    if match == "*":
        return EXISTS
    value = match.removeprefix("W/").strip('"')
    if not value.isdigit():
        raise HttpProblem(
            problem(
                400,
                "invalid-input",
                "Bad Request",
                f'If-Match is a stream version as an ETag ("3") or *, got {match!r}',
            )
        )
    return int(value)


def status_json(s: Any) -> dict[str, Any]:
    return {
        "name": s.name,
        "version": s.version,
        "target": s.target,
        "position": s.position,
        "lag": s.lag,
        "lag_seconds": round(s.lag_seconds, 3),
        "status": s.status,
        "error": s.error,
    }


def sse_event(rec: RecordedEvent) -> bytes:
    """One event as Server-Sent Events bytes: its position as the id, the event as JSON."""
    return b"id: %d\ndata: %s\n\n" % (rec.position, ENCODER.encode(event_json(rec)))
