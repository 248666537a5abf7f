"""The embedded log's only door to the disk, so tests can put faults in it.

`FileIO` is the real thing (plain `os` calls). `eventbook.testing.faults.FaultyFileIO`
subclasses it to fail chosen writes or syncs with ENOSPC or EIO.
"""

from __future__ import annotations

import os

_ZEROS_BYTES = 1024 * 1024  # zeros written per call when reserving space


class FileIO:
    """Thin wrappers over os calls on file descriptors. Every method may raise OSError."""

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def allocate(self, fd: int, offset: int, length: int) -> None:
        """Reserve space so that appends overwrite instead of growing the file.

        Zeros are written and synced, not just fallocated: on ext4 an fallocated block is
        "unwritten", and the first write into it is a metadata change that every fdatasync
        must then journal (measured: 100-event commits synced in ~400 us instead of ~250)."""
        zeros = bytes(min(length, _ZEROS_BYTES))
        end = offset + length
        while offset < end:
            self.pwrite(fd, zeros[: end - offset], offset)
            offset += len(zeros)
        os.fdatasync(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
