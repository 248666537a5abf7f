"""The position index: a fixed-size entry per position, so the Nth event is found by
arithmetic (seed 001). Entry p lives at header + 16 * (p - 1). Written after the data it
points to is synced; never synced itself, because it is rebuilt from the log when needed."""

from __future__ import annotations

import os
from pathlib import Path

from eventbook.backends.log import format as fmt
from eventbook.backends.log.fileio import FileIO

HEADER = fmt.INDEX_HEADER.size
ENTRY = fmt.INDEX_ENTRY.size


class PositionIndex:
    def __init__(self, root: Path, io: FileIO, log_id: bytes, *, writable: bool) -> None:
        self.path = str(root / fmt.INDEX_DIR / fmt.POSITION_INDEX_FILE)
        self.io = io
        self.log_id = log_id
        self.fd: int | None = None
        self.count = 0
        self.valid_header = False
        if writable:
            self.fd = io.open(self.path, os.O_RDWR | os.O_CREAT)
        elif os.path.exists(self.path):
            self.fd = io.open(self.path, os.O_RDONLY)
        if self.fd is not None:
            self.valid_header = self._header_ok()
            self.refresh()
        if writable and not self.valid_header:
            self.reset()

    def _header_ok(self) -> bool:
        assert self.fd is not None
        raw = self.io.pread(self.fd, HEADER, 0)
        if len(raw) < HEADER:
            return False
        magic, version, _, log_id = fmt.INDEX_HEADER.unpack(raw)
        return magic == fmt.INDEX_MAGIC and version == fmt.FORMAT_VERSION and log_id == self.log_id

    def refresh(self) -> int:
        """Re-read how many whole entries the file holds (another process may append)."""
        if self.fd is None or not self.valid_header:
            self.count = 0
        else:
            self.count = max(0, (self.io.size(self.fd) - HEADER) // ENTRY)
        return self.count

    def reset(self) -> None:
        """Empty the index (it will be rebuilt from the log)."""
        assert self.fd is not None
        self.io.truncate(self.fd, 0)
        self.io.pwrite(
            self.fd, fmt.INDEX_HEADER.pack(fmt.INDEX_MAGIC, fmt.FORMAT_VERSION, 0, self.log_id), 0
        )
        self.valid_header = True
        self.count = 0

    def entry(self, position: int) -> tuple[int, int, int] | None:
        """(segment, offset, length) of a position, or None if the index lacks it."""
        if self.fd is None or not 1 <= position <= self.count:
            return None
        raw = self.io.pread(self.fd, ENTRY, HEADER + ENTRY * (position - 1))
        if len(raw) < ENTRY:
            return None
        offset, segment, length = fmt.INDEX_ENTRY.unpack(raw)
        return segment, offset, length

    def append(self, entries: bytes, first_position: int) -> None:
        assert self.fd is not None and first_position == self.count + 1
        self.io.pwrite(self.fd, entries, HEADER + ENTRY * (first_position - 1))
        self.count += len(entries) // ENTRY

    def truncate(self, count: int) -> None:
        assert self.fd is not None
        self.io.truncate(self.fd, HEADER + ENTRY * count)
        self.count = count

    def close(self) -> None:
        if self.fd is not None:
            self.io.close(self.fd)
            self.fd = None
