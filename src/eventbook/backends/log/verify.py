"""verify, repair and inspect for the embedded log (the CLI's `verify`, `repair`, `inspect`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from eventbook.backends.log import format as fmt
from eventbook.backends.log.fileio import FileIO
from eventbook.backends.log.layout import quarantine, quarantine_file, read_log_id
from eventbook.backends.log.lock import WriterLock, writer_alive
from eventbook.backends.log.position_index import PositionIndex
from eventbook.backends.log.recovery import TailScan, scan
from eventbook.backends.log.segments import Segments
from eventbook.backends.log.stream_index import StreamIndex, remove_files
from eventbook.errors import InvalidInput, StoreCorrupted
from eventbook.store.reports import FrameInfo, Problem, RepairReport, VerifyReport


def _segments(root: Path, io: FileIO) -> tuple[bytes, Segments]:
    log_id = read_log_id(root) if root.is_dir() else None
    if log_id is None:
        raise InvalidInput(f"there is no eventbook store at {root}")
    return log_id, Segments(root, io, log_id)


def _walk(segments: Segments, progress: Callable[[int, int], None] | None) -> TailScan:
    total = _estimate_events(segments)
    step = max(1, total // 200)

    def tick(done: int) -> None:
        if progress is not None and done % step == 0:
            progress(done, total)

    return scan(segments, 1, fmt.SEGMENT_HEADER.size, 1, tick, strict=False)


def _estimate_events(segments: Segments) -> int:
    """A rough event count for progress bars, from the position index file size."""
    path = segments.dir.parent / fmt.INDEX_DIR / fmt.POSITION_INDEX_FILE
    try:
        return max(1, (os.path.getsize(path) - fmt.INDEX_HEADER.size) // fmt.INDEX_ENTRY.size)
    except OSError:
        return 1


def verify_log(root: Path, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Read every record and check checksums, positions, commit structure, per-stream
    versions and both indexes. Changes nothing."""
    io = FileIO()
    log_id, segments = _segments(root, io)
    report = VerifyReport(f"file://{root.resolve()}")
    try:
        found = _walk(segments, progress)
    except StoreCorrupted as exc:
        report.problems.append(Problem(exc.what, exc.path, exc.offset))
        return report
    finally:
        segments.close()
    report.events_checked = len(found.entries)
    report.commits_checked = len(found.commits)
    report.head_position = found.last_position
    if found.torn_from is not None:
        seg, off = found.torn_from
        what = found.torn_why + (
            ", and valid records follow it (damage: run `eventbook repair`)"
            if found.damaged
            else " at the end of the log (a torn write, never acknowledged; cut on the next "
            "open for writing)"
        )
        if found.damaged or not writer_alive(root):
            report.problems.append(Problem(what, segments.path(seg), off, found.last_position + 1))
    _check_versions(found, report)
    _check_position_index(root, io, log_id, found, report)
    _check_stream_index(root, log_id, found, report)
    return report


def _check_versions(found: TailScan, report: VerifyReport) -> None:
    versions: dict[str, int] = {}
    for stream, version, position in found.rows:
        if version != versions.get(stream, 0) + 1:
            report.problems.append(
                Problem(
                    f"stream {stream!r} jumps to version {version} after {versions.get(stream, 0)}",
                    position=position,
                )
            )
            return
        versions[stream] = version


def _check_position_index(
    root: Path, io: FileIO, log_id: bytes, found: TailScan, report: VerifyReport
) -> None:
    pindex = PositionIndex(root, io, log_id, writable=False)
    try:
        if pindex.fd is None or not pindex.valid_header:
            report.problems.append(
                Problem(
                    "the position index is missing or belongs to another "
                    "log (rebuilt on the next open for writing)",
                    pindex.path,
                )
            )
            return
        if pindex.count > len(found.entries):
            report.problems.append(
                Problem(
                    f"the position index has {pindex.count} entries for {len(found.entries)} "
                    "records",
                    pindex.path,
                )
            )
        for position in range(1, min(pindex.count, len(found.entries)) + 1):
            if pindex.entry(position) != found.entries[position - 1]:
                report.problems.append(
                    Problem(
                        f"the position index entry for position {position} points elsewhere",
                        pindex.path,
                        position=position,
                    )
                )
                return
    finally:
        pindex.close()


def _check_stream_index(root: Path, log_id: bytes, found: TailScan, report: VerifyReport) -> None:
    sindex = StreamIndex(root, log_id, writable=False)
    try:
        through = sindex.indexed_through
        if sindex.db is None or through == 0:
            return
        if through > len(found.rows):
            report.problems.append(
                Problem(
                    f"the stream index covers {through} positions but the log has "
                    f"{len(found.rows)}",
                    str(root / fmt.INDEX_DIR / fmt.STREAM_INDEX_FILE),
                )
            )
            return
        (rows,) = sindex.db.execute("SELECT count(*) FROM events").fetchone()
        if rows != through or sindex.last_row != found.rows[through - 1]:
            report.problems.append(
                Problem(
                    "the stream index disagrees with the log (rebuilt on the next open for writing "
                    "after `eventbook repair`)",
                    str(root / fmt.INDEX_DIR / fmt.STREAM_INDEX_FILE),
                )
            )
    finally:
        sindex.close()


def repair_log(root: Path) -> RepairReport:
    """Cut the log at its first damaged or torn record, moving every byte from there on into
    quarantine/ (never deleting), then rebuild both indexes from the log."""
    from eventbook.backends.log.store import LogStore

    io = FileIO()
    log_id, segments = _segments(root, io)
    report = RepairReport(f"file://{root.resolve()}")
    lock = WriterLock(root)
    try:
        found = scan(segments, 1, fmt.SEGMENT_HEADER.size, 1, strict=False)
        if found.torn_from is not None:
            seg, off = found.torn_from
            for number in range(segments.last, seg, -1):
                moved, size = quarantine_file(root, io, segments.path(number), found.torn_why)
                report.quarantined.append(moved)
                report.bytes_moved += size
                segments.numbers.pop()
            moved, size = quarantine(root, io, segments.path(seg), off, found.torn_why)
            report.quarantined.append(moved)
            report.bytes_moved += size
        segments.close()
        index = root / fmt.INDEX_DIR / fmt.POSITION_INDEX_FILE
        if index.exists():
            index.unlink()
        remove_files(root)
        report.indexes_rebuilt = ["positions", "streams"]
    finally:
        lock.release()
    del log_id
    store = LogStore.open(root)
    report.head_position = store.head_position()
    store.close()
    return report


def inspect_log(root: Path, segment: int | None = None) -> Iterator[FrameInfo]:
    """The record headers of one segment (default: the last), with their checksum state."""
    io = FileIO()
    _, segments = _segments(root, io)
    number = segment if segment is not None else segments.last
    if number not in segments.numbers:
        segments.close()
        raise InvalidInput(
            f"segment {number} does not exist; the log has segments 1..{segments.last}"
        )
    return _frames(segments, number)


def _frames(segments: Segments, number: int) -> Iterator[FrameInfo]:
    name = fmt.segment_name(number)
    try:
        for at, header, buf, i in segments.frames(number, fmt.SEGMENT_HEADER.size):
            if header is None and not segments.read(number, at, 4096).strip(b"\0"):
                return  # reserved space after the data: the clean end
            if header is None:
                yield FrameInfo(name, at, 0, 0, 0, 0, 0, "", "(not a whole record)", False)
                return
            ok = fmt.frame_crc_ok(buf, i, header)
            stream, kind = "?", "?"
            if ok:
                event = fmt.decode_event(buf, i, header)
                stream, kind = event.stream, event.type
            yield FrameInfo(
                name,
                at,
                header.length,
                header.position,
                header.version,
                header.commit_count,
                header.commit_index,
                stream,
                kind,
                ok,
            )
    finally:
        segments.close()
