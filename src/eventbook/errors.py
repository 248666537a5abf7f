"""The one exception tree of eventbook.

    EventbookError
    ├── InvalidInput            bad stream id, type name, payload, expected version, URL ...
    ├── WrongExpectedVersion    a stream was not at the version the caller expected
    ├── DuplicateCommit         a commit id was reused with different content
    ├── StreamNotFound          a read asked for a stream that has no events (when required)
    ├── StoreClosed             the store was used after close()
    ├── StoreLocked             another process holds the embedded log's writer lock
    ├── StoreReadOnly           a write was tried on a store opened (or turned) read-only
    ├── StoreCorrupted          stored bytes fail their checksum or do not fit the format
    ├── StoreUnsupported        the store is in a format this eventbook cannot read
    ├── StoreFailed             the disk refused a write or sync; the store turned read-only
    ├── StoreUnavailable        the store's server cannot be reached (PostgreSQL, NATS)
    └── Timeout                 a bounded wait ran out

Every error carries the fields a caller needs (stream, expected, actual, path, offset, ...)
and a message that says what happened, where, and what the user can do about it.
The CLI maps them to exit codes with `exit_code` (0 ok, 1 conflict, 2 invalid input,
3 store damaged or locked).
"""

from __future__ import annotations


class EventbookError(Exception):
    """Base class of every error eventbook raises on purpose."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(EventbookError):
    """The caller gave something the store does not accept; nothing was written."""

    exit_code = 2


class WrongExpectedVersion(EventbookError):
    """A stream's version differs from the expected one; nothing was written."""

    exit_code = 1

    def __init__(self, stream: str, expected: object, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream!r} is at version {actual}, but the commit expected {expected}; "
            "nothing was written. Read the stream again and decide on its current state."
        )


class DuplicateCommit(EventbookError):
    """A commit id was used before for different content."""

    exit_code = 1

    def __init__(self, commit_id: str, first_position: int) -> None:
        self.commit_id = commit_id
        self.first_position = first_position
        super().__init__(
            f"commit id {commit_id!r} was already used at position {first_position} for "
            "different events; nothing was written. Use a new commit id for a new commit."
        )


class StreamNotFound(EventbookError):
    exit_code = 1

    def __init__(self, stream: str) -> None:
        self.stream = stream
        super().__init__(f"stream {stream!r} has no events")


class StoreClosed(EventbookError):
    exit_code = 2

    def __init__(self) -> None:
        super().__init__("the store is closed; open it again with eventbook.open_store()")


class StoreLocked(EventbookError):
    exit_code = 3

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"the store at {path} is open for writing by {holder}; one writer process at a "
            "time. Stop that process, or open this one read-only."
        )


class StoreReadOnly(EventbookError):
    exit_code = 3

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"the store at {path} is read-only: {why}")


class StoreCorrupted(EventbookError):
    exit_code = 3

    def __init__(self, path: str, offset: int | None, what: str) -> None:
        self.path = path
        self.offset = offset
        self.what = what
        where = f"{path} at byte offset {offset}" if offset is not None else path
        super().__init__(
            f"store damaged: {what} in {where}. Nothing was changed. Run `eventbook verify` "
            "for a full report; `eventbook repair` moves damaged bytes aside (never deletes)."
        )


class StoreUnsupported(EventbookError):
    exit_code = 3

    def __init__(self, path: str, found: object, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"the store at {path} is in format version {found}, and this eventbook reads "
            f"version {supported}. Nothing was changed: open it with an eventbook that reads "
            f"version {found}."
        )


class StoreFailed(EventbookError):
    exit_code = 3

    def __init__(self, path: str, cause: BaseException) -> None:
        self.path = path
        self.cause = cause
        super().__init__(
            f"the disk refused a write or sync on {path} ({cause}); the store turned read-only "
            "so that nothing unacknowledged is reported as written. Every acknowledged append "
            "is safe. Free space or fix the disk, then open the store again."
        )


class StoreUnavailable(EventbookError):
    """The store's server cannot be reached, or the connection broke during a call."""

    exit_code = 3

    def __init__(self, where: str, cause: object, unknown_outcome: bool = False) -> None:
        self.where = where
        self.cause = cause
        self.unknown_outcome = unknown_outcome
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        then = (
            "The append's outcome is unknown: it may have been recorded. Retry it with the same "
            "commit id once the server is back (the retry returns the first result if it was)."
            if unknown_outcome
            else "Check that the server is running and reachable, then try again."
        )
        super().__init__(f"cannot reach {where} ({detail}). {then}")


class Timeout(EventbookError):
    exit_code = 1


__all__ = [
    "DuplicateCommit",
    "EventbookError",
    "InvalidInput",
    "StoreClosed",
    "StoreCorrupted",
    "StoreFailed",
    "StoreLocked",
    "StoreReadOnly",
    "StoreUnavailable",
    "StoreUnsupported",
    "StreamNotFound",
    "Timeout",
    "WrongExpectedVersion",
]
