"""Snapshots: saved states that bound replay, kept beside the events, never in the log.

A snapshot is derived data: losing one costs a longer replay, never a fact. So snapshots live
in their own table (the embedded log keeps them in `snapshots.sqlite` in the store directory),
are written without a sync of their own, and are chosen only when they match the code that
reads them (`code_version`). `key` is a stream id for per-stream snapshots and `$day-end` for
the whole-state cut-offs at the end of a business day.

The store also keeps a few named settings here (`meta`), such as the application last run on
it, so the CLI can find it again.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator
from datetime import datetime

import msgspec

DAY_END_KEY = "$day-end"


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # the stream id, or DAY_END_KEY
    version: int  # the stream version folded into it (0 for a whole-state cut-off)
    position: int  # the global position of the last event folded into it
    recorded_at: datetime | None  # when the last folded event was recorded
    max_occurred_at: datetime | None  # the latest occurred time among the folded events
    code_version: str  # the version of the evolve code that made it
    schema_version: int  # the version of the state's shape
    state: bytes  # the state, encoded by the engine
    state_hash: str
    label: str = ""  # a day-end's business date, e.g. "2026-11-24"
    taken_at: datetime | None = None


class Criteria(msgspec.Struct, frozen=True, kw_only=True):
    """Which snapshots may serve a target: all bounds inclusive, None for no bound."""

    version_max: int | None = None
    position_max: int | None = None
    recorded_max: datetime | None = None
    occurred_max: datetime | None = None

    def admits(self, s: Snapshot) -> bool:
        if self.version_max is not None and s.version > self.version_max:
            return False
        if self.position_max is not None and s.position > self.position_max:
            return False
        if self.recorded_max is not None and (
            s.recorded_at is None or s.recorded_at > self.recorded_max
        ):
            return False
        return self.occurred_max is None or (
            s.max_occurred_at is not None and s.max_occurred_at <= self.occurred_max
        )


class SnapshotStore(abc.ABC):
    """Where a store keeps its snapshots."""

    @abc.abstractmethod
    def save(self, snapshot: Snapshot) -> None:
        """Keep a snapshot (replacing one with the same key, position and code version)."""

    @abc.abstractmethod
    def candidates(self, key: str, code_version: str) -> Iterator[Snapshot]:
        """The key's snapshots made by this code version, latest position first."""

    @abc.abstractmethod
    def all(self, key: str | None = None) -> Iterator[Snapshot]:
        """Every snapshot (of one key), by key then position."""

    @abc.abstractmethod
    def get_meta(self, name: str) -> str | None: ...

    @abc.abstractmethod
    def set_meta(self, name: str, value: str) -> None: ...

    def close(self) -> None:  # noqa: B027 - nothing to release unless a backend says so
        """Release the snapshot table. Idempotent."""

    def latest(self, key: str, code_version: str, criteria: Criteria) -> Snapshot | None:
        """The latest snapshot of `key` by this code version that the criteria admit."""
        for snapshot in self.candidates(key, code_version):
            if criteria.admits(snapshot):
                return snapshot
        return None

    def by_label(self, key: str, code_version: str, label: str) -> Snapshot | None:
        for snapshot in self.candidates(key, code_version):
            if snapshot.label == label:
                return snapshot
        return None


class MemorySnapshots(SnapshotStore):
    """Snapshots of a memory store: gone with the process, like its events."""

    def __init__(self) -> None:
        self._by_key: dict[str, dict[tuple[int, str], Snapshot]] = {}
        self._meta: dict[str, str] = {}
        self._lock = threading.Lock()

    def save(self, snapshot: Snapshot) -> None:
        with self._lock:
            mine = self._by_key.setdefault(snapshot.key, {})
            mine[(snapshot.position, snapshot.code_version)] = snapshot

    def candidates(self, key: str, code_version: str) -> Iterator[Snapshot]:
        with self._lock:
            found = [
                s for s in self._by_key.get(key, {}).values() if s.code_version == code_version
            ]
        return iter(sorted(found, key=lambda s: s.position, reverse=True))

    def all(self, key: str | None = None) -> Iterator[Snapshot]:
        with self._lock:
            keys = sorted(self._by_key) if key is None else [key]
            found = [s for k in keys for s in self._by_key.get(k, {}).values()]
        return iter(sorted(found, key=lambda s: (s.key, s.position)))

    def get_meta(self, name: str) -> str | None:
        return self._meta.get(name)

    def set_meta(self, name: str, value: str) -> None:
        self._meta[name] = value
