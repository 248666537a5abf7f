"""Reading the log past what the position index covers: whole commits only.

Used on open (the tail since the index's end, bounded by what was written and not yet
indexed), to rebuild lost indexes (from the start), by read-only openers, and by verify.
A spot where the bytes are not a whole, valid frame ends the scan. If valid frames for later
positions follow that spot in the same segment it is damage, not a torn write, and the scan
raises StoreCorrupted naming file and offset; otherwise it is a torn tail: never
acknowledged, safe to cut.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from eventbook.backends.log import format as fmt
from eventbook.backends.log.segments import Segments
from eventbook.backends.log.stream_index import Row
from eventbook.core.messages import RecordedEvent
from eventbook.errors import StoreCorrupted
from eventbook.store.commit import CommitRecord


@dataclass
class TailScan:
    first_position: int
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # segment, offset, length
    rows: list[Row] = field(default_factory=list)
    commits: list[tuple[list[Row], CommitRecord | None]] = field(default_factory=list)
    end_segment: int = 1
    end_offset: int = fmt.SEGMENT_HEADER.size
    torn_from: tuple[int, int] | None = None  # (segment, offset) where a torn tail starts
    torn_why: str = ""
    damaged: bool = False  # valid records follow the bad spot: damage, not a torn write
    last_event: RecordedEvent | None = None

    @property
    def last_position(self) -> int:
        return self.first_position + len(self.entries) - 1


def scan(
    segments: Segments,
    segment: int,
    offset: int,
    next_position: int,
    progress: Callable[[int], None] | None = None,
    *,
    strict: bool = True,
    until: int | None = None,
) -> TailScan:
    """Scan whole commits from (segment, offset), whose first event is `next_position`.

    With strict=False damage is reported in the result (`damaged`) instead of raised. With
    `until`, stop after the commit holding that position: readers never look past what is
    durable, where a live writer's bytes are still arriving."""
    result = TailScan(next_position, end_segment=segment, end_offset=offset)
    pending: list[tuple[int, int, int, RecordedEvent, fmt.CommitHead | None]] = []
    position = next_position
    for number in range(segment, segments.last + 1):
        start = offset if number == segment else fmt.SEGMENT_HEADER.size
        if number != segment and pending:
            # A writer rolls over only after a commit was written whole: a commit cut short
            # at a segment's end, with valid records after it, is damage.
            why = "a commit is cut short at the end of its segment"
            last = pending[-1]
            return _torn(
                result,
                segments,
                number - 1,
                pending[0][1],
                why,
                last[1] + last[2],
                position,
                strict,
            )
        for at, header, buf, i in segments.frames(number, start):
            if header is None and not pending and _is_unwritten(segments, number, at):
                break  # reserved space that was never written: the clean end of the data
            problem = _check(header, buf, i, position, len(pending))
            if problem:
                cut = pending[0][1] if pending else at
                return _torn(result, segments, number, cut, problem, at, position, strict)
            assert header is not None
            head = fmt.decode_head(buf, i, header) if header.commit_index == 0 else None
            event = head if head is not None else fmt.decode_event(buf, i, header)
            pending.append((number, at, header.length, event, head))
            position += 1
            if header.commit_index == header.commit_count - 1:
                _take(result, pending)
                result.end_segment, result.end_offset = number, at + header.length
                if progress is not None:
                    progress(len(result.entries))
                pending = []
                if until is not None and position > until:
                    return result
    if pending:
        number, at = pending[0][0], pending[0][1]
        return _torn(result, segments, number, at, "the last commit is cut short")
    return result


def _is_unwritten(segments: Segments, number: int, at: int) -> bool:
    """Whether the bytes at `at` are zeros up to a page boundary and the next page."""
    window = 4096 - at % 4096 + 4096
    return not segments.read(number, at, window).strip(b"\0")


def _check(header: fmt.FrameHeader | None, buf: bytes, i: int, position: int, index: int) -> str:
    if header is None:
        return "the bytes are not a whole record"
    if not fmt.frame_crc_ok(buf, i, header):
        return f"the record for position {position} fails its checksum"
    if header.position != position:
        return f"found position {header.position} where {position} belongs"
    if header.commit_index != index or not 0 <= index < header.commit_count:
        return f"the record for position {position} is out of its commit's order"
    return ""


def _take(result: TailScan, pending: list) -> None:
    rows: list[Row] = []
    for number, at, length, event, _ in pending:
        result.entries.append((number, at, length))
        rows.append((event.stream, event.version, event.position))
    result.rows.extend(rows)
    head = pending[0][4]
    commit = None
    if head is not None and head.commit_id is not None:
        commit = CommitRecord(
            head.commit_id, head.commit_digest, pending[0][3].position, pending[-1][3].position
        )
    result.commits.append((rows, commit))
    result.last_event = pending[-1][3]


def _torn(
    result: TailScan,
    segments: Segments,
    number: int,
    cut: int,
    why: str,
    at: int | None = None,
    position: int | None = None,
    strict: bool = True,
) -> TailScan:
    if at is not None and position is not None:
        # From `at` itself: a whole, valid record there for a later position is evidence too
        # (records went missing before it).
        later = _valid_frame_after(segments, number, at - 1, position)
        if later is not None and not strict:
            result.damaged = True
        elif later is not None:
            raise StoreCorrupted(
                segments.path(number),
                at,
                f"{why}, and a valid record (position {later}) follows it, so this is damage, "
                "not a torn write",
            )
    result.torn_from = (number, cut)
    result.torn_why = why
    return result


def _valid_frame_after(segments: Segments, number: int, at: int, position: int) -> int | None:
    """The position of a valid frame after `at` in the segment, or first in the next segment
    (a writer rolls over only after the last commit was written whole), if any: damage."""
    fd = segments.read_fd(number)
    size = os.fstat(fd).st_size
    buf = segments.read(number, at + 1, size - at - 1)
    i = buf.find(fmt.FRAME_MAGIC)
    while i >= 0:
        header = fmt.parse_header(buf, i)
        if (
            header is not None
            and header.position >= position
            and i + header.length <= len(buf)
            and fmt.frame_crc_ok(buf, i, header)
        ):
            return header.position
        i = buf.find(fmt.FRAME_MAGIC, i + 1)
    if number < segments.last:
        for _, header, buf, i in segments.frames(number + 1, fmt.SEGMENT_HEADER.size):
            if (
                header is not None
                and header.position >= position
                and (fmt.frame_crc_ok(buf, i, header))
            ):
                return header.position
            break
    return None
