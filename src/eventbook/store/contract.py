"""The store port: what every backend offers, and the parts they share.

Capabilities, layered: streams (append, read_stream, stream_version) and the global log
(read_all, head_position, wait_for_append). Subscriptions are built on the global log here,
once, for every backend. The conformance suite in `eventbook.testing` is the executable form
of this contract.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec

from eventbook import limits
from eventbook.core.messages import AppendResult, NewEvent, RecordedEvent
from eventbook.errors import InvalidInput, StoreClosed
from eventbook.store.snapshots import MemorySnapshots, SnapshotStore
from eventbook.store.subscription import Subscription


class StreamInfo(msgspec.Struct, frozen=True):
    stream: str
    version: int
    last_position: int


def check_position(value: object, what: str = "after") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"{what} must be a position (an integer >= 0), got {value!r}")
    return value


def check_limit(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"limit must be an integer >= 0 or None, got {value!r}")
    return value


class EventStore(abc.ABC):
    """An event store. Use `eventbook.open_store(url)` to get one."""

    url: str
    closed: bool = False

    @abc.abstractmethod
    def append(
        self,
        events: Iterable[NewEvent],
        *,
        expected: Mapping[str, object] | None = None,
        commit_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append one commit atomically; see the store contract in docs/store-contract.md."""

    @abc.abstractmethod
    def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backward: bool = False,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        """A stream's events, forward from `from_version` (default 1) or backward from it
        (default: the last); lazily, in constant memory."""

    @abc.abstractmethod
    def read_all(self, *, after: int = 0, limit: int | None = None) -> Iterator[RecordedEvent]:
        """Every event with a position after `after`, in position order, lazily."""

    @abc.abstractmethod
    def read_commit(self, commit_id: str) -> list[RecordedEvent]:
        """The events of the commit appended with this commit id ([] when there is none)."""

    @abc.abstractmethod
    def stream_version(self, stream: str) -> int:
        """The number of events in a stream (0 when it has none)."""

    @abc.abstractmethod
    def head_position(self) -> int:
        """The position of the last visible event (0 for an empty store)."""

    @abc.abstractmethod
    def streams(self) -> Iterator[StreamInfo]:
        """Every stream with its version and last position, ordered by stream id."""

    @abc.abstractmethod
    def wait_for_append(self, after: int, timeout: float) -> bool:
        """Block until an event after `after` is visible or `timeout` seconds pass."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release files, locks and connections. Idempotent."""

    def subscribe(self, *, after: int = 0, idle_timeout: float | None = None) -> Subscription:
        """Catch up from `after`, then follow live events, with no gap and no duplicate."""
        self._check_open()
        check_position(after)
        if idle_timeout is not None and (
            isinstance(idle_timeout, bool)
            or not isinstance(idle_timeout, int | float)
            or not 0 <= idle_timeout <= limits.wait_seconds_max
        ):
            raise InvalidInput(
                f"idle_timeout must be None or a number of seconds 0..{limits.wait_seconds_max}, "
                f"got {idle_timeout!r}"
            )
        return Subscription(self, after, idle_timeout)

    def snapshots(self) -> SnapshotStore:
        """Where this store keeps snapshots (memory unless the backend keeps them durably)."""
        self._check_open()
        mine = self.__dict__.get("_snapshot_store")
        if mine is None:
            mine = self.__dict__["_snapshot_store"] = self._open_snapshots()
        return mine

    def _open_snapshots(self) -> SnapshotStore:
        return MemorySnapshots()

    def _close_snapshots(self) -> None:
        mine = self.__dict__.pop("_snapshot_store", None)
        if mine is not None:
            mine.close()

    def stats(self) -> dict[str, Any]:
        return {"url": self.url, "head_position": self.head_position()}

    def _check_open(self) -> None:
        if self.closed:
            raise StoreClosed()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
