"""The embedded log store: the default backend (a path or file:// URL).

`LogStore` opens a log (opening.py), writes through group commit (group_commit.py) and reads:
the global log by chunked sequential reads of the segments, single events through the
position index, streams through the stream index (SQLite, then the in-memory tail). Only
synced events are visible. Readers in other processes follow the position index file.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventbook import limits
from eventbook.backends.log import format as fmt
from eventbook.backends.log.fileio import FileIO
from eventbook.backends.log.group_commit import GroupCommit, _Slot
from eventbook.backends.log.index_flusher import IndexFlusher
from eventbook.backends.log.opening import OpenedLog, open_log
from eventbook.backends.log.recovery import scan
from eventbook.backends.log.snapshots import SqliteSnapshots
from eventbook.core.messages import RecordedEvent
from eventbook.core.validation import check_id_text
from eventbook.errors import (
    InvalidInput,
    StoreCorrupted,
    StoreFailed,
)
from eventbook.store.contract import EventStore, StreamInfo, check_limit, check_position
from eventbook.store.reading import page_stream
from eventbook.store.snapshots import SnapshotStore

SYNC_POLICIES = ("always", "none")
_unpack = fmt.FRAME_HEADER.unpack_from
_pack_entry = fmt.INDEX_ENTRY.pack
_HEADER = fmt.FRAME_HEADER.size
_MAGIC = fmt.FRAME_MAGIC
_ZERO = bytes(4)


def utc_now() -> datetime:
    return datetime.now(UTC)


class LogStore(GroupCommit, EventStore):
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        sync: str = "always",
        io: FileIO | None = None,
        clock: Callable[[], datetime] = utc_now,
        progress: Callable[[int], None] | None = None,
    ) -> LogStore:
        """Open (or create, when writable) the log at `path`.

        sync="always" acknowledges an append only after fdatasync; "none" skips the sync
        (tests and bulk imports only: a power loss may lose acknowledged appends)."""
        if sync not in SYNC_POLICIES:
            raise InvalidInput(f"sync must be one of {SYNC_POLICIES}, got {sync!r}")
        return cls(open_log(Path(path), io or FileIO(), readonly, progress), sync, clock)

    def __init__(self, opened: OpenedLog, sync: str, clock: Callable[[], datetime]) -> None:
        self._log = opened
        self.root = opened.root
        self.url = f"file://{opened.root.resolve()}"
        self.readonly = opened.readonly
        self._io = opened.io
        self._segments = opened.segments
        self._pindex = opened.pindex
        self._sindex = opened.sindex
        self._tail = opened.tail
        self._extra = opened.extra_entries  # readers: entries past the index file
        self._extra_first = opened.extra_first  # the position of self._extra[0]
        self._sync = sync == "always"
        self._clock = clock
        self._head = opened.head
        self._written = opened.head
        self._last_recorded = opened.last_recorded_at
        self._write_fd = opened.write_fd
        self._write_segment = opened.segments.last
        self._write_end = opened.write_end
        self._allocated = 0 if opened.write_fd < 0 else self._io.size(opened.write_fd)
        self._old_fds: list[int] = []  # segments rolled over, not yet synced
        self._pending = bytearray()  # index entries written, not yet synced
        self._versions: dict[str, int] = {}
        self._failure: StoreFailed | None = None
        self._stage = bytearray()  # frames of the batch being committed, not yet written
        self._queue: list[_Slot] = []  # appends waiting for the next batch
        self._combining = False  # a thread is leading a batch
        self._closing = False
        self._queue_lock = threading.Lock()
        self._idle = threading.Condition(self._queue_lock)
        self._queued = threading.Condition(self._queue_lock)
        self._batch_expected = 1  # the size of the last batch: how many appenders are active
        self._index_lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._flusher = IndexFlusher(self._flush_index, self._index_failed)
        self._synced = threading.Condition()

    # ----------------------------------------------------------------- reading

    def head_position(self) -> int:
        self._check_open()
        if self.readonly:
            self._refresh()
        return self._head

    def _refresh(self) -> None:
        """Readers: take in what the writer process made durable since we last looked."""
        with self._index_lock:
            count = self._whole_commits(self._pindex.refresh())
            if count <= self._head:
                return  # nothing new: the usual case when polled
            if self._extra and count >= self._extra_first + len(self._extra) - 1:
                self._extra = []
            head = max(count, self._extra_first + len(self._extra) - 1 if self._extra else 0)
            through = self._sindex.refresh()
            if through > self._tail.base and through <= head:
                self._tail.take(through)
            if head > self._head:
                last = self._pindex.entry(count)
                if last is not None and last[0] > self._segments.last:  # the writer rolled over
                    self._segments.numbers = list(range(1, last[0] + 1))
                self._index_tail(head)
                self._head = head

    def _whole_commits(self, count: int) -> int:
        """Lower an index count that ends inside a commit (a writer died while writing the
        index, or we looked in the middle of a write) to the end of the commit before."""
        entry = self._pindex.entry(count) if count > self._head else None
        if entry is None:
            return count
        header = fmt.parse_header(self._segments.read(entry[0], entry[1], _HEADER), 0)
        if header is None:
            return count
        return count - (header.position - fmt.whole_commits_through(header))

    def _index_tail(self, head: int) -> None:
        """Readers: add the stream rows of positions (tail end, head] to the in-memory tail."""
        known = self._tail.rows[-1][2] if self._tail.rows else self._tail.base
        if known >= head:
            return
        where = self._locate(known + 1)
        found = scan(self._segments, where[0], where[1], known + 1, until=head)
        for rows, commit in found.commits:
            if rows[-1][2] > head:
                break
            self._tail.add(rows, commit)

    def _locate(self, position: int) -> tuple[int, int, int]:
        entry = self._pindex.entry(position)
        if entry is None and self._extra:
            i = position - self._extra_first
            if 0 <= i < len(self._extra):
                entry = self._extra[i]
        if entry is None:
            raise StoreCorrupted(self._pindex.path, None, f"no index entry for position {position}")
        return entry

    def read_all(self, *, after: int = 0, limit: int | None = None) -> Iterator[RecordedEvent]:
        self._check_open()
        check_position(after)
        limit = check_limit(limit)
        head = self.head_position()
        end = head if limit is None else min(head, after + limit)
        if after >= end:
            return iter(())
        segment, offset, length = self._locate(after + 1)
        # A short read (the Nth event, a page) starts with a read of about its own size.
        first_chunk = min(limits.read_chunk_bytes, max(length, 4096) * (end - after))
        return self._scan_events(segment, offset, after + 1, end, first_chunk)

    def _scan_events(
        self, segment: int, offset: int, position: int, end: int, chunk: int
    ) -> Iterator[RecordedEvent]:
        """The hot read loop: chunked sequential reads, each frame checked, decoded."""
        segments, io, crc, decode = self._segments, self._io, fmt._crc, fmt._decode_event
        fd = segments.read_fd(segment)
        while position <= end:
            buf = io.pread(fd, chunk, offset)
            size = len(buf)
            if size < _HEADER or buf[:4] == _ZERO:  # this segment's data ends here
                if segment >= segments.last:
                    raise StoreCorrupted(
                        segments.path(segment), offset, f"the log ends before position {position}"
                    )
                segment += 1
                fd = segments.read_fd(segment)
                offset = fmt.SEGMENT_HEADER.size
                continue
            view = memoryview(buf)
            i = 0
            while position <= end and size - i >= _HEADER:
                magic, length, check, _f, pos, _v, _c, _i = _unpack(buf, i)
                if size - i < length or magic == _ZERO:
                    break
                if (
                    magic != _MAGIC
                    or pos != position
                    or length < _HEADER
                    or (crc(view[i + 12 : i + length]) != check)
                ):
                    raise StoreCorrupted(
                        segments.path(segment),
                        offset + i,
                        f"the record for position {position} is damaged",
                    )
                yield decode(view[i + _HEADER : i + length])
                i += length
                position += 1
            if i == 0:  # one frame larger than a chunk: read it whole
                length = _unpack(buf, 0)[1]
                if size < chunk or offset + length > io.size(fd):  # a damaged length field
                    raise StoreCorrupted(
                        segments.path(segment),
                        offset,
                        f"the record for position {position} is damaged",
                    )
                chunk = max(length, chunk + 1)
                continue
            offset += i
            chunk = limits.read_chunk_bytes

    def read_event(self, position: int) -> RecordedEvent:
        """The event at a position (the Nth event, found by arithmetic in the index)."""
        self._check_open()
        if not 1 <= position <= self._head and not 1 <= position <= self.head_position():
            raise InvalidInput(f"position {position} is not in the log (1..{self._head})")
        segment, offset, length = self._locate(position)
        buf = self._segments.read(segment, offset, length)
        header = fmt.indexed_frame(buf, position, length)
        if header is None:
            raise StoreCorrupted(
                self._segments.path(segment),
                offset,
                f"the record for position {position} is damaged",
            )
        return fmt.decode_event(buf, 0, header)

    def read_commit(self, commit_id: str) -> list[RecordedEvent]:
        self._check_open()
        check_id_text(commit_id, what="commit id", chars_max=limits.commit_id_chars_max)
        head = self.head_position()
        found = self._known_commit(commit_id)
        if found is None or found.last_position > head:
            return []
        span = found.last_position - found.first_position + 1
        return list(self.read_all(after=found.first_position - 1, limit=span))

    def stream_version(self, stream: str) -> int:
        self._check_open()
        head = self.head_position()
        with self._index_lock:
            return self._visible_version(stream, head)

    def _visible_version(self, stream: str, head: int) -> int:
        last = self._tail.version(stream)
        if last is None:
            return self._sindex.version(stream)
        first = self._tail.first_version(stream)
        assert first is not None
        positions = self._tail.positions(stream, first, last)
        hidden = len(positions) - bisect.bisect_right(positions, head)
        return last - hidden

    def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backward: bool = False,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        self._check_open()
        version = self.stream_version(stream) if isinstance(stream, str) else 0
        return page_stream(
            stream,
            version,
            lambda lo, hi: self._fetch(stream, lo, hi),
            from_version,
            backward,
            limit,
        )

    def _fetch(self, stream: str, first: int, last: int) -> list[RecordedEvent]:
        with self._index_lock:
            positions = self._sindex.positions(stream, first, last)
            if len(positions) < last - first + 1:
                positions += self._tail.positions(stream, first + len(positions), last)
        found: list[RecordedEvent] = []
        i, count = 0, len(positions)
        while i < count:  # a run of consecutive positions is one sequential scan
            j = i
            while j + 1 < count and positions[j + 1] == positions[j] + 1:
                j += 1
            if j == i:
                found.append(self.read_event(positions[i]))
            else:
                segment, offset, length = self._locate(positions[i])
                chunk = min(limits.read_chunk_bytes, max(length, 4096) * (j - i + 1))
                found.extend(self._scan_events(segment, offset, positions[i], positions[j], chunk))
            i = j + 1
        return found

    def streams(self) -> Iterator[StreamInfo]:
        self._check_open()
        head = self.head_position()
        with self._index_lock:
            found = {s: (v, p) for s, v, p in self._sindex.streams()}
            for stream in self._tail.streams():
                version = self._visible_version(stream, head)
                if version:
                    positions = self._tail.positions(stream, version, version)
                    found[stream] = (version, positions[0] if positions else found[stream][1])
        for stream in sorted(found):
            yield StreamInfo(stream, *found[stream])

    def wait_for_append(self, after: int, timeout: float) -> bool:
        deadline = time.monotonic() + min(timeout, limits.wait_seconds_max)
        if self.readonly:
            pause = 0.001
            while not self.closed:
                if self.head_position() > after:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(pause, left))
                pause = min(pause * 2, limits.subscription_poll_seconds_max)
            return False
        with self._synced:
            return self._synced.wait_for(
                lambda: self._head > after or self.closed or self._failure is not None,
                max(0.0, deadline - time.monotonic()),
            )

    def stats(self) -> dict[str, Any]:
        head = self.head_position()
        sizes = [os.path.getsize(self._segments.path(n)) for n in self._segments.numbers]
        return {
            "url": self.url,
            "head_position": head,
            "segments": len(sizes),
            "log_bytes": sum(sizes),
            "indexed_through": self._sindex.indexed_through,
            "readonly": self.readonly,
            "sync": "always" if self._sync else "none",
            "failed": None if self._failure is None else str(self._failure.cause),
        }

    def _open_snapshots(self) -> SnapshotStore:
        return SqliteSnapshots(self.root, readonly=self.readonly)

    def close(self) -> None:
        if self.closed:
            return
        with self._queue_lock:
            self._closing = True  # appends from now on are refused
            self._idle.wait_for(lambda: not self._combining)  # the batch in flight ends
        self._flusher.stop()
        if not self.readonly and self._failure is None:
            self._flush_index()
        with self._synced:
            self.closed = True
            self._synced.notify_all()
        self._log.write_fd = self._write_fd  # after a rollover, the opened fd is closed
        self._log.close(self._old_fds)
        self._close_snapshots()
