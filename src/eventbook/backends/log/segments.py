"""Segment files: numbered files of frames, and the sequential frame scanner over them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from eventbook import limits
from eventbook.backends.log import format as fmt
from eventbook.backends.log.fileio import FileIO
from eventbook.errors import StoreCorrupted


class Segments:
    """The segment files of one log: reading by (segment, offset), scanning, creating."""

    def __init__(self, root: Path, io: FileIO, log_id: bytes) -> None:
        self.dir = root / fmt.SEGMENT_DIR
        self.io = io
        self.log_id = log_id
        self._read_fds: dict[int, int] = {}
        self.numbers = self._list()

    def _list(self) -> list[int]:
        numbers = []
        for name in os.listdir(self.dir):
            stem, _, ext = name.partition(".")
            if ext == "seg" and stem.isdigit():
                numbers.append(int(stem))
        numbers.sort()
        if numbers != list(range(1, len(numbers) + 1)):
            raise StoreCorrupted(
                str(self.dir), None, f"segment files are not numbered 1..{len(numbers)}: {numbers}"
            )
        return numbers

    def path(self, number: int) -> str:
        return str(self.dir / fmt.segment_name(number))

    @property
    def last(self) -> int:
        return self.numbers[-1]

    def read_fd(self, number: int) -> int:
        fd = self._read_fds.get(number)
        if fd is None:
            fd = self.io.open(self.path(number), os.O_RDONLY)
            self._read_fds[number] = fd
            self.check_header(number, fd)
        return fd

    def check_header(self, number: int, fd: int) -> None:
        raw = self.io.pread(fd, fmt.SEGMENT_HEADER.size, 0)
        if len(raw) < fmt.SEGMENT_HEADER.size:
            raise StoreCorrupted(self.path(number), 0, "the segment header is cut short")
        magic, version, seg_no, log_id = fmt.SEGMENT_HEADER.unpack(raw)
        if magic != fmt.SEGMENT_MAGIC or seg_no != number or log_id != self.log_id:
            raise StoreCorrupted(
                self.path(number), 0, "the segment header does not belong to this log"
            )
        if version != fmt.FORMAT_VERSION:
            raise StoreCorrupted(self.path(number), 0, f"unknown segment format {version}")

    def size(self, number: int) -> int:
        return self.io.size(self.read_fd(number))

    def read(self, number: int, offset: int, size: int) -> bytes:
        return self.io.pread(self.read_fd(number), size, offset)

    def create(self, number: int) -> int:
        """Create segment `number` durably (file and directory synced); return a write fd."""
        assert number == (self.numbers[-1] + 1 if self.numbers else 1)
        path = self.path(number)
        fd = self.io.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        self.io.pwrite(
            fd,
            fmt.SEGMENT_HEADER.pack(fmt.SEGMENT_MAGIC, fmt.FORMAT_VERSION, number, self.log_id),
            0,
        )
        self.io.fsync(fd)
        self.io.fsync_dir(str(self.dir))
        self.numbers.append(number)
        return fd

    def open_for_append(self, number: int) -> int:
        return self.io.open(self.path(number), os.O_RDWR)

    def frames(
        self, number: int, offset: int
    ) -> Iterator[tuple[int, fmt.FrameHeader | None, bytes, int]]:
        """Scan frames from `offset` to the end of a segment, in chunks.

        Yields (offset, header, buffer, buffer_offset) per frame; header is None (and the
        scan ends) where the bytes are not a whole frame: a torn or damaged spot."""
        fd = self.read_fd(number)
        end = self.io.size(fd)
        while offset < end:
            want = min(max(limits.read_chunk_bytes, fmt.FRAME_HEADER.size), end - offset)
            buf = self.io.pread(fd, want, offset)
            i = 0
            while True:
                header = fmt.parse_header(buf, i)
                if header is None or len(buf) - i < header.length:
                    break
                yield offset + i, header, buf, i
                i += header.length
            if i == 0:  # no whole frame in this chunk: a bigger frame, or a damaged spot
                header = fmt.parse_header(buf, 0)
                if (
                    header is not None
                    and offset + header.length <= end
                    and len(buf) < header.length
                ):
                    buf = self.io.pread(fd, header.length, offset)
                    yield offset, header, buf, 0
                    offset += header.length
                    continue
                yield offset, None, b"", 0
                return
            offset += i

    def close(self) -> None:
        for fd in self._read_fds.values():
            self.io.close(fd)
        self._read_fds.clear()
