"""The in-memory store: the executable specification of the store contract. Keep it short."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from eventbook import limits
from eventbook.core.messages import AppendResult, NewEvent, RecordedEvent
from eventbook.core.validation import check_id_text
from eventbook.errors import DuplicateCommit
from eventbook.store.commit import CommitRecord, plan_commit, prepare_commit, result_of
from eventbook.store.contract import EventStore, StreamInfo, check_limit, check_position
from eventbook.store.reading import page_stream


def utc_now() -> datetime:
    return datetime.now(UTC)


class MemoryStore(EventStore):
    def __init__(self, url: str = "memory://", clock: Callable[[], datetime] = utc_now) -> None:
        self.url = url
        self._clock = clock
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[int]] = {}  # stream -> positions
        self._commits: dict[str, CommitRecord] = {}
        self._changed = threading.Condition()

    def append(
        self,
        events: Iterable[NewEvent],
        *,
        expected: Mapping[str, object] | None = None,
        commit_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        self._check_open()
        prepared = prepare_commit(events, expected, commit_id, metadata)
        with self._changed:
            self._check_open()
            if commit_id is not None and commit_id in self._commits:
                first = self._commits[commit_id]
                if first.digest != prepared.digest:
                    raise DuplicateCommit(commit_id, first.first_position)
                return result_of(self._log[first.first_position - 1 : first.last_position])
            now = self._clock()
            if self._log and now < self._log[-1].recorded_at:
                now = self._log[-1].recorded_at  # recorded_at never decreases along positions
            records, result = plan_commit(prepared, self.stream_version, len(self._log) + 1, now)
            for record in records:
                self._log.append(record)
                self._streams.setdefault(record.stream, []).append(record.position)
            if commit_id is not None:
                self._commits[commit_id] = CommitRecord(
                    commit_id, prepared.digest, result.first_position, result.last_position
                )
            self._changed.notify_all()
            return result

    def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backward: bool = False,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        self._check_open()
        positions = self._streams.get(stream, []) if isinstance(stream, str) else []
        return page_stream(
            stream,
            len(positions),
            lambda lo, hi: [self._log[p - 1] for p in positions[lo - 1 : hi]],
            from_version,
            backward,
            limit,
        )

    def read_all(self, *, after: int = 0, limit: int | None = None) -> Iterator[RecordedEvent]:
        self._check_open()
        check_position(after)
        limit = check_limit(limit)
        end = len(self._log) if limit is None else min(len(self._log), after + limit)
        return iter(self._log[after:end])

    def read_commit(self, commit_id: str) -> list[RecordedEvent]:
        self._check_open()
        check_id_text(commit_id, what="commit id", chars_max=limits.commit_id_chars_max)
        with self._changed:
            found = self._commits.get(commit_id)
            return (
                [] if found is None else self._log[found.first_position - 1 : found.last_position]
            )

    def stream_version(self, stream: str) -> int:
        self._check_open()
        return len(self._streams.get(stream, ()))

    def head_position(self) -> int:
        self._check_open()
        return len(self._log)

    def streams(self) -> Iterator[StreamInfo]:
        self._check_open()
        return (
            StreamInfo(stream, len(self._streams[stream]), self._streams[stream][-1])
            for stream in sorted(self._streams)
        )

    def wait_for_append(self, after: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._log) > after or self.closed, timeout)

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()
