"""Writing to the embedded log: group commit by combining.

An append is checked and encoded by its own thread, then queued. One appending thread at a
time leads: it waits briefly when fewer appends are queued than the last batch had, takes
the whole queue as a batch, plans each commit in order (expected versions, positions),
writes the batch's frames with one write, fdatasyncs once, writes the position index
entries, publishes the new head, wakes the batch's appenders and passes the lead to the
first append queued meanwhile. A failed write or sync (or any error while staging) turns
the store read-only (StoreFailed) and fails the whole batch: nothing unacknowledged is
reported as written. The stream index's in-memory tail goes to SQLite on a background
thread (index_flusher.py).

`GroupCommit` is the writing half of `LogStore`; the state it uses is set up in
`LogStore.__init__`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from eventbook import limits
from eventbook.backends.log import format as fmt
from eventbook.backends.log.fileio import FileIO
from eventbook.backends.log.index_flusher import IndexFlusher
from eventbook.backends.log.position_index import PositionIndex
from eventbook.backends.log.segments import Segments
from eventbook.backends.log.stream_index import Row, StreamIndex, Tail
from eventbook.core.messages import AppendResult, NewEvent, RecordedEvent
from eventbook.errors import (
    DuplicateCommit,
    EventbookError,
    StoreClosed,
    StoreFailed,
    StoreReadOnly,
)
from eventbook.store.commit import (
    CommitRecord,
    PreparedCommit,
    plan_commit,
    prepare_commit,
    result_of,
)

_pack_entry = fmt.INDEX_ENTRY.pack


class _Slot:
    """One append waiting in a batch: what to commit, and where its answer goes."""

    __slots__ = ("error", "first", "lead", "prepared", "result", "wake")

    def __init__(self, prepared: PreparedCommit) -> None:
        self.prepared = prepared
        self.wake = threading.Lock()
        self.wake.acquire()  # released when the answer is ready, or to lead
        self.lead = False
        self.result: AppendResult | None = None
        self.error: EventbookError | None = None
        self.first: CommitRecord | None = None  # an earlier commit with the same id and content


class GroupCommit:
    """The writing half of LogStore (see the module docstring)."""

    root: object
    readonly: bool
    _io: FileIO
    _segments: Segments
    _pindex: PositionIndex
    _sindex: StreamIndex
    _tail: Tail
    _sync: bool
    _clock: Callable[[], datetime]
    _head: int
    _written: int
    _last_recorded: datetime
    _write_fd: int
    _write_segment: int
    _write_end: int
    _allocated: int
    _old_fds: list[int]
    _pending: bytearray
    _versions: dict[str, int]
    _failure: StoreFailed | None
    _stage: bytearray
    _queue: list[_Slot]
    _combining: bool
    _closing: bool
    _queue_lock: threading.Lock
    _idle: threading.Condition
    _queued: threading.Condition
    _batch_expected: int
    _index_lock: threading.RLock
    _flush_lock: threading.Lock
    _flusher: IndexFlusher
    _synced: threading.Condition

    # and from EventStore and LogStore: _check_open(), read_all()

    def append(
        self,
        events: Iterable[NewEvent],
        *,
        expected: Mapping[str, object] | None = None,
        commit_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        self._check_writable()
        slot = _Slot(prepare_commit(events, expected, commit_id, metadata))
        with self._queue_lock:
            self._check_writable()
            self._queue.append(slot)
            lead = not self._combining
            self._combining = True
            if len(self._queue) >= self._batch_expected:
                self._queued.notify()
        if not lead:
            slot.wake.acquire()  # woken with an answer, or to lead the next batch
            lead = slot.lead
        if lead:
            self._lead(slot)
        return self._answer(slot)

    def _lead(self, own: _Slot) -> None:
        """Commit everything queued as one batch (own included), then pass the lead to the
        first append that queued up meanwhile. (Leading more batches in a row was measured
        slower: the leader then competes for the GIL with the appenders it just woke.)"""
        with self._queue_lock:
            # When the last batch was bigger than what is queued, the other appenders are on
            # their way back: wait a moment for them, so one sync serves them all (like
            # PostgreSQL's commit_delay, and only when others are writing).
            if len(self._queue) < self._batch_expected:
                self._queued.wait(limits.group_commit_wait_seconds_max)
            batch, self._queue = self._queue, []
            self._batch_expected = len(batch)
        try:
            self._commit_batch(batch)
        finally:
            with self._queue_lock:
                if self._queue:
                    follower = self._queue[0]
                    follower.lead = True
                    follower.wake.release()
                else:
                    self._combining = False
                    self._idle.notify_all()
            for slot in batch:
                if slot is not own:
                    slot.wake.release()

    def _commit_batch(self, batch: list[_Slot]) -> None:
        """Plan, encode and write each commit of the batch, then one sync for all of them.

        A commit refused on its own (a wrong expected version, a reused commit id) is
        answered with its error and stages nothing. Anything else that fails on the way
        (the disk, SQLite, a bug) turns the store read-only, and then every commit of the
        batch fails: frames of earlier commits may be staged but never written."""
        for slot in batch:
            try:
                if self._failure is not None:
                    raise self._failure
                self._stage_commit(slot)
            except EventbookError as refused_or_failed:
                slot.error = refused_or_failed
            except Exception as error:
                slot.error = self._fail(error)
        if self._failure is None:
            try:
                self._flush_stage()
                self._sync_written()
            except StoreFailed:
                pass
            except Exception as error:
                self._fail(error)
        if self._failure is not None:
            for slot in batch:
                if slot.error is None or isinstance(slot.error, StoreFailed):
                    slot.error, slot.result, slot.first = self._failure, None, None

    def _stage_commit(self, slot: _Slot) -> None:
        prepared = slot.prepared
        commit_id = prepared.commit_id
        first = self._known_commit(commit_id) if commit_id is not None else None
        if first is not None:
            if first.digest != prepared.digest:
                raise DuplicateCommit(commit_id or "", first.first_position)
            slot.first = first
            return
        now = self._clock()
        if now < self._last_recorded:
            now = self._last_recorded  # recorded_at never decreases along positions
        records, result = plan_commit(prepared, self._version_of, self._written + 1, now)
        frames = fmt.encode_commit(records, prepared.digest, prepared.metadata)
        commit = None
        if commit_id is not None:
            commit = CommitRecord(
                commit_id, prepared.digest, result.first_position, result.last_position
            )
        self._write(frames, records, commit)
        self._last_recorded = now
        slot.result = result

    def _answer(self, slot: _Slot) -> AppendResult:
        if slot.error is not None:
            raise slot.error
        if slot.result is not None:
            return slot.result
        first = slot.first
        assert first is not None
        span = first.last_position - first.first_position + 1
        return result_of(list(self.read_all(after=first.first_position - 1, limit=span)))

    def _check_writable(self) -> None:
        if self._closing:
            raise StoreClosed()
        self._check_open()
        if self.readonly:
            raise StoreReadOnly(str(self.root), "it was opened read-only")
        if self._failure is not None:
            raise self._failure

    def _known_commit(self, commit_id: str) -> CommitRecord | None:
        with self._index_lock:
            found = self._tail.commits.get(commit_id)
            return found if found is not None else self._sindex.commit(commit_id)

    def _version_of(self, stream: str) -> int:
        version = self._versions.get(stream)
        if version is None:
            with self._index_lock:
                version = self._tail.version(stream)
                if version is None:
                    version = self._sindex.version(stream)
            self._versions[stream] = version
        return version

    def _write(
        self, frames: bytes, records: list[RecordedEvent], commit: CommitRecord | None
    ) -> None:
        """Stage a commit's frames at the end of the log; `_flush_stage` writes the batch."""
        if self._write_end + len(frames) > limits.segment_bytes_max and (
            self._write_end > fmt.SEGMENT_HEADER.size
        ):
            self._flush_stage()
            self._roll_over()
        offset = self._write_end
        self._stage += frames
        segment = self._write_segment
        entries = self._pending
        rows: list[Row] = []
        start = offset
        for record in records:
            length = fmt.FRAME_PREFIX.unpack_from(frames, offset - start)[1]
            entries += _pack_entry(offset, segment, length)
            offset += length
            rows.append((record.stream, record.version, record.position))
            self._versions[record.stream] = record.version
        self._write_end = offset
        self._written = records[-1].position
        with self._index_lock:
            self._tail.add(rows, commit)
            backlog = len(self._tail)
        if backlog >= limits.index_commit_events_max:
            if backlog >= 4 * limits.index_commit_events_max:
                self._flush_index()  # the flusher fell behind: wait for it, and help
            else:
                self._flusher.wake()
        if len(self._versions) > limits.stream_cache_count_max:
            self._versions.clear()  # the tail and SQLite together know every version

    def _flush_stage(self) -> None:
        """Write the staged frames (page cache) in one call; the sync comes after."""
        if not self._stage:
            return
        offset = self._write_end - len(self._stage)
        try:
            if self._write_end > self._allocated:
                self._allocate(self._write_end)
            self._io.pwrite(self._write_fd, bytes(self._stage), offset)
        except OSError as exc:
            raise self._fail(exc) from exc
        finally:
            self._stage.clear()

    def _allocate(self, needed: int) -> None:
        # Reserve geometrically (64 KiB, then as much as is reserved already, up to
        # segment_allocate_bytes), so a small store stays small and a big one rarely waits.
        step = min(max(self._allocated, 64 * 1024), limits.segment_allocate_bytes)
        size = min(max(needed, self._allocated + step), max(needed, limits.segment_bytes_max))
        self._io.allocate(self._write_fd, self._allocated, size - self._allocated)
        self._allocated = size

    def _roll_over(self) -> None:
        try:
            # The full segment loses its reserved space, so only the last one has any.
            self._io.truncate(self._write_fd, self._write_end)
            fd = self._segments.create(self._write_segment + 1)
        except OSError as exc:
            raise self._fail(exc) from exc
        self._old_fds.append(self._write_fd)
        self._write_fd = fd
        self._write_segment += 1
        self._write_end = fmt.SEGMENT_HEADER.size
        self._allocated = self._io.size(fd)

    def _sync_written(self) -> None:
        """Make everything written so far durable, index it, then publish it to readers."""
        if self._failure is not None:
            raise self._failure
        if self._written == self._head:
            return
        upto = self._written
        entries = bytes(self._pending)
        self._pending.clear()
        fds = [*self._old_fds, self._write_fd]
        old = self._old_fds
        self._old_fds = []
        try:
            if self._sync:
                for fd in fds:
                    self._io.fdatasync(fd)
            self._pindex.append(entries, self._head + 1)
        except OSError as exc:
            raise self._fail(exc) from exc
        for fd in old:
            self._io.close(fd)
        with self._synced:
            self._head = upto
            self._synced.notify_all()

    def _fail(self, exc: BaseException) -> StoreFailed:
        failure = StoreFailed(str(self.root), exc)
        with self._synced:
            if self._failure is None:
                self._failure = failure
            self._synced.notify_all()
        return self._failure

    def _flush_index(self) -> None:
        """Move the in-memory tail of the stream index, up to the durable head, to SQLite.

        The rows stay in the tail until SQLite committed them, so readers (which query
        SQLite on a connection of their own, then the tail) never miss one."""
        with self._flush_lock:
            with self._index_lock:
                upto = self._head
                rows, commits = self._tail.peek(upto)
            if rows or commits:
                self._sindex.write(rows, commits, upto)
            with self._index_lock:
                self._tail.drop(upto)

    def _index_failed(self, error: Exception) -> None:
        self._fail(error)
