"""The embedded log's only door to the disk, so tests can put faults in it.

`FileIO` is the real thing (plain `os` calls). `eventbook.testing.faults.FaultyFileIO`
subclasses it to fail chosen writes or syncs with ENOSPC or EIO.
"""

from __future__ import annotations

import os


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
        """Reserve space (zero-filled) so that appends overwrite instead of growing the file:
        an fdatasync then has no file size to journal."""
        os.posix_fallocate(fd, offset, length)

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
