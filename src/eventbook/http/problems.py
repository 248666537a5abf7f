"""Errors as RFC 9457 problem details (`application/problem+json`): one table from eventbook's
exceptions to HTTP statuses, and the response builder every route uses."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from eventbook.errors import (
    DuplicateCommit,
    EventbookError,
    InvalidInput,
    StoreClosed,
    StoreReadOnly,
    StoreUnavailable,
    StreamNotFound,
    Timeout,
    WrongExpectedVersion,
)

PROBLEM = "application/problem+json"

# the first matching class wins: subclasses before their bases
STATUS_OF: list[tuple[type[EventbookError], int, str]] = [
    (WrongExpectedVersion, 409, "wrong-expected-version"),
    (DuplicateCommit, 409, "duplicate-commit"),
    (StreamNotFound, 404, "stream-not-found"),
    (Timeout, 504, "timeout"),
    (StoreReadOnly, 403, "read-only"),
    (StoreUnavailable, 503, "store-unavailable"),
    (StoreClosed, 503, "store-closed"),
    (InvalidInput, 400, "invalid-input"),
]


def problem(status: int, kind: str, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    body = {"type": f"/problems/{kind}", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def problem_of(error: EventbookError) -> JSONResponse:
    for cls, status, kind in STATUS_OF:
        if isinstance(error, cls):
            extra: dict[str, Any] = {}
            if isinstance(error, WrongExpectedVersion):
                extra = {"stream": error.stream, "actual_version": error.actual}
            return problem(status, kind, type(error).__name__, str(error), **extra)
    return problem(500, "error", type(error).__name__, str(error))


__all__ = ["PROBLEM", "STATUS_OF", "problem", "problem_of"]
