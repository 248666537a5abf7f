"""Opening a log: create it, take the lock, check the tail, bring the indexes up to date.

The work on open is bounded by what was written but not yet indexed, not by the size of
the log: the last position index entry is checked against its record, the log is scanned
from there, a torn tail is cut (its bytes quarantined), and the stream index catches up
from its own checkpoint. Only a lost or foreign index costs a full scan (a rebuild).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from eventbook.backends.log import format as fmt
from eventbook.backends.log.fileio import FileIO
from eventbook.backends.log.layout import (
    check_layout_free,
    create_layout,
    quarantine,
    quarantine_file,
    read_log_id,
)
from eventbook.backends.log.lock import WriterLock, writer_alive
from eventbook.backends.log.position_index import PositionIndex
from eventbook.backends.log.recovery import TailScan, scan
from eventbook.backends.log.segments import Segments
from eventbook.backends.log.stream_index import StreamIndex, Tail
from eventbook.errors import InvalidInput, StoreCorrupted

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class OpenedLog:
    root: Path
    io: FileIO
    readonly: bool
    segments: Segments
    pindex: PositionIndex
    sindex: StreamIndex
    tail: Tail
    head: int
    last_recorded_at: datetime = _EPOCH
    write_fd: int = -1
    write_end: int = 0
    lock: WriterLock | None = None
    extra_entries: list[tuple[int, int, int]] = field(default_factory=list)
    extra_first: int = 1
    quarantined: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)

    def close(self, more_fds: list[int]) -> None:
        for fd in [*more_fds, self.write_fd]:
            if fd >= 0:
                self.io.close(fd)
        self.write_fd = -1
        self.segments.close()
        self.pindex.close()
        self.sindex.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def open_log(
    root: Path, io: FileIO, readonly: bool, progress: Callable[[int], None] | None = None
) -> OpenedLog:
    if readonly:
        return _open_reader(root, io)
    if root.exists() and not root.is_dir():
        raise InvalidInput(f"{root} is a file, not a store directory")
    log_id = read_log_id(root) if root.exists() else None
    if log_id is None:
        check_layout_free(root)  # before the lock file goes into somebody else's directory
    lock = WriterLock(root)  # creation too happens under the lock: one log id, ever
    try:
        log_id = read_log_id(root) or create_layout(root, io)
        opened = _recover(root, io, log_id, progress)
    except BaseException:
        lock.release()
        raise
    opened.lock = lock
    return opened


def _recover(
    root: Path, io: FileIO, log_id: bytes, progress: Callable[[int], None] | None
) -> OpenedLog:
    segments = Segments(root, io, log_id)
    quarantined: list[str] = []
    last = segments.numbers[-1] if segments.numbers else 0
    if last and os.path.getsize(segments.path(last)) < fmt.SEGMENT_HEADER.size and last > 1:
        quarantined.append(
            quarantine_file(
                root, io, segments.path(last), "segment created but its header never completed"
            )[0]
        )
        segments.numbers.pop()
    if not segments.numbers:
        io.close(segments.create(1))
    elif os.path.getsize(segments.path(1)) < fmt.SEGMENT_HEADER.size and len(segments.numbers) == 1:
        os.unlink(segments.path(1))  # a crash while creating the store: nothing was in it
        segments.numbers.clear()
        io.close(segments.create(1))
    pindex = PositionIndex(root, io, log_id, writable=True)
    rebuilt: list[str] = []
    count = _checked_index_count(segments, pindex)
    if count < pindex.count or not pindex.valid_header:
        rebuilt.append("positions")
    if count == 0 and pindex.count:
        pindex.reset()
    segment, offset = _after(segments, pindex, count)
    found = scan(segments, segment, offset, count + 1, progress)
    if found.torn_from is not None:
        quarantined += _cut_torn(root, io, segments, found)
    pindex.truncate(count)
    pindex.append(b"".join(fmt.INDEX_ENTRY.pack(o, s, n) for s, o, n in found.entries), count + 1)
    head = pindex.count
    write_segment = segments.last
    # No whole commit ends in the last segment: its data is empty (past it is only space
    # reserved by allocate, or a torn commit just cut), so writing starts after its header.
    write_end = found.end_offset if found.end_segment == write_segment else fmt.SEGMENT_HEADER.size
    sindex = StreamIndex(root, log_id, writable=True)
    if _stream_index_stale(segments, pindex, sindex, head):
        sindex.reset()
        rebuilt.append("streams")
    _catch_up(segments, pindex, sindex, head, progress)
    last_event = _last_event(segments, pindex, head)
    return OpenedLog(
        root,
        io,
        False,
        segments,
        pindex,
        sindex,
        Tail(head),
        head,
        last_event.recorded_at if last_event else _EPOCH,
        segments.open_for_append(write_segment),
        write_end,
        quarantined=quarantined,
        rebuilt=rebuilt,
    )


def _checked_index_count(segments: Segments, pindex: PositionIndex) -> int:
    """How many position index entries can be trusted: all, or none (then it is rebuilt).

    The last entry must point at a whole record for that position. A record that is there
    but fails its checksum was synced and acknowledged: that is damage, and we refuse."""
    count = pindex.count
    if count == 0:
        return 0
    entry = pindex.entry(count)
    assert entry is not None
    segment, offset, length = entry
    if segment not in segments.numbers:
        return 0
    buf = segments.read(segment, offset, length)
    header = fmt.parse_header(buf, 0)
    if header is None or header.position != count or header.length != length or len(buf) < length:
        # Bytes that are the record the index describes (its checksum holds, or a frame header
        # of that length) with a damaged magic, length or position: damage, not a stale index.
        whole = len(buf) == length >= fmt.FRAME_HEADER.size
        if whole and (
            fmt.FRAME_PREFIX.unpack_from(buf)[2] == fmt._crc(buf[fmt.FRAME_CRC_START :])
            or (header is not None and header.length == length)
        ):
            raise StoreCorrupted(
                segments.path(segment), offset, f"the record for position {count} is damaged"
            )
        return 0
    if not fmt.frame_crc_ok(buf, 0, header):
        raise StoreCorrupted(
            segments.path(segment), offset, f"the record for position {count} fails its checksum"
        )
    # The index is not synced, so a crash can leave it ending inside a commit: trust it up to
    # the commit before, and let the tail scan take the whole commit in again.
    return fmt.whole_commits_through(header)


def _after(segments: Segments, pindex: PositionIndex, count: int) -> tuple[int, int]:
    """Where the record after position `count` starts."""
    if count == 0:
        return 1, fmt.SEGMENT_HEADER.size
    entry = pindex.entry(count)
    assert entry is not None
    return entry[0], entry[1] + entry[2]


def _cut_torn(root: Path, io: FileIO, segments: Segments, found: TailScan) -> list[str]:
    assert found.torn_from is not None
    segment, offset = found.torn_from
    moved = []
    for number in range(segments.last, segment, -1):
        path = segments.path(number)
        moved.append(quarantine_file(root, io, path, f"after a torn tail: {found.torn_why}")[0])
        segments.numbers.pop()
    moved.append(
        quarantine(root, io, segments.path(segment), offset, f"torn tail: {found.torn_why}")[0]
    )
    segments.close()  # cached read fds may point at moved files
    return moved


def _stream_index_stale(
    segments: Segments, pindex: PositionIndex, sindex: StreamIndex, head: int
) -> bool:
    through = sindex.indexed_through
    if through > head:
        return True
    if through == 0 or sindex.last_row is None:
        return through != 0
    stream, version, position = sindex.last_row
    event = _event_at(segments, pindex, position)
    return event is None or event.stream != stream or event.version != version


def _catch_up(
    segments: Segments,
    pindex: PositionIndex,
    sindex: StreamIndex,
    head: int,
    progress: Callable[[int], None] | None,
) -> None:
    through = sindex.indexed_through
    if through >= head:
        return
    segment, offset = _after(segments, pindex, through)
    found = scan(segments, segment, offset, through + 1, progress)
    assert found.torn_from is None and found.last_position >= head
    batch_rows, batch_commits = [], []
    for rows, commit in found.commits:
        if rows[-1][2] > head:
            break
        batch_rows += rows
        if commit is not None:
            batch_commits.append(commit)
        if len(batch_rows) >= 50_000:
            sindex.write(batch_rows, batch_commits, rows[-1][2])
            batch_rows, batch_commits = [], []
    sindex.write(batch_rows, batch_commits, head)


def _event_at(segments: Segments, pindex: PositionIndex, position: int):
    entry = pindex.entry(position)
    if entry is None:
        return None
    segment, offset, length = entry
    buf = segments.read(segment, offset, length)
    header = fmt.indexed_frame(buf, position, length)
    return None if header is None else fmt.decode_event(buf, 0, header)


def _last_event(segments: Segments, pindex: PositionIndex, head: int):
    return _event_at(segments, pindex, head) if head else None


def _open_reader(root: Path, io: FileIO) -> OpenedLog:
    log_id = read_log_id(root) if root.is_dir() else None
    if log_id is None:
        raise InvalidInput(f"there is no eventbook store at {root}")
    segments = Segments(root, io, log_id)
    if not segments.numbers:
        raise InvalidInput(f"the store at {root} has no segments yet; open it for writing once")
    if len(segments.numbers) > 1 and (
        os.path.getsize(segments.path(segments.last)) < fmt.SEGMENT_HEADER.size
    ):
        segments.numbers.pop()  # a writer is creating it, or died doing so: nothing is in it
    pindex = PositionIndex(root, io, log_id, writable=False)
    count = _checked_index_count(segments, pindex)
    extra: list[tuple[int, int, int]] = []
    tail_rows = None
    if not writer_alive(root):
        # No writer: what is past the index (a writer that died before indexing it) is read
        # in memory, whole commits only, without cutting anything.
        segment, offset = _after(segments, pindex, count)
        found = scan(segments, segment, offset, count + 1)
        extra, tail_rows = found.entries, found
        if count == 0 < pindex.count:  # entries past the log: the next writer rebuilds the
            pindex.valid_header, pindex.count = False, 0  # index; this reader uses none of it
        pindex.count = min(pindex.count, count)  # an index ending inside a commit: up to it
    head = count + len(extra)
    sindex = StreamIndex(root, log_id, writable=False)
    through = sindex.indexed_through
    if through > head or _stream_index_stale(segments, pindex, sindex, min(through, count)):
        sindex.close()
        sindex.db = None
        through = 0
        sindex.indexed_through = 0
    tail = Tail(through)
    opened = OpenedLog(
        root,
        io,
        True,
        segments,
        pindex,
        sindex,
        tail,
        through,
        extra_entries=extra,
        extra_first=count + 1,
    )
    if head > through:
        _fill_reader_tail(opened, head, tail_rows)
    opened.head = head
    last = _event_at(segments, pindex, count) if count else None
    opened.last_recorded_at = last.recorded_at if last else _EPOCH
    return opened


def _fill_reader_tail(opened: OpenedLog, head: int, past_index: TailScan | None) -> None:
    through = opened.tail.base
    count = opened.pindex.count
    if through < count:
        segment, offset = _after(opened.segments, opened.pindex, through)
        found = scan(opened.segments, segment, offset, through + 1, until=count)
        for rows, commit in found.commits:
            if rows[-1][2] > count:
                break
            opened.tail.add(rows, commit)
    if past_index is not None:
        for rows, commit in past_index.commits:
            opened.tail.add(rows, commit)
