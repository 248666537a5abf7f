"""A file layer that fails on purpose, to test what the embedded log does when the disk says no.

`FaultyFileIO` is the embedded log's `FileIO` with one chosen operation made to fail with an
`OSError` (ENOSPC, EIO, ...), the way a full or failing disk does::

    from errno import ENOSPC
    from eventbook.backends.log.store import LogStore
    from eventbook.testing.faults import FaultyFileIO

    io = FaultyFileIO("fdatasync", errno=ENOSPC, path_contains="segments", armed=False)
    store = LogStore.open(path, io=io)
    store.append(...)            # works: the fault is not armed yet
    io.arm()
    store.append(...)            # raises eventbook.StoreFailed; the store is read-only now

Operations that can fail: "open", "pwrite", "fdatasync", "fsync", "allocate", "truncate",
"fsync_dir". The first `after` matching calls succeed and the next one fails; with
`sticky=True` (the default, like a disk that stays full) every later matching call fails too.
`partial=K` makes a failing pwrite write its first K bytes before it raises: a torn write.
`calls` counts matching calls and `failures` counts the ones that failed, so a test can check
that its fault was really hit.
"""

from __future__ import annotations

import errno as errnos
import os

from eventbook.backends.log.fileio import FileIO

OPERATIONS = ("open", "pwrite", "fdatasync", "fsync", "allocate", "truncate", "fsync_dir")


class FaultyFileIO(FileIO):
    """`FileIO` that raises OSError(errno) on the chosen operation; see the module docstring."""

    def __init__(
        self,
        fail_on: str,
        *,
        after: int = 0,
        errno: int = errnos.ENOSPC,
        path_contains: str | None = None,
        sticky: bool = True,
        partial: int | None = None,
        armed: bool = True,
    ) -> None:
        if fail_on not in OPERATIONS:
            raise ValueError(f"fail_on must be one of {OPERATIONS}, got {fail_on!r}")
        if partial is not None and fail_on != "pwrite":
            raise ValueError("partial writes only make sense with fail_on='pwrite'")
        self.fail_on = fail_on
        self.after = after
        self.errno = errno
        self.path_contains = path_contains
        self.sticky = sticky
        self.partial = partial
        self.armed = armed
        self.calls = 0  # matching calls while armed
        self.failures = 0  # of which failed
        self._paths: dict[int, str] = {}  # fd -> path, to match fd-based calls by path

    def arm(self, after: int | None = None) -> None:
        """Start counting (and failing) from now on."""
        if after is not None:
            self.after = after
        self.calls = 0
        self.armed = True

    def disarm(self) -> None:
        self.armed = False

    def _should_fail(self, operation: str, path: str | None) -> bool:
        if not self.armed or operation != self.fail_on:
            return False
        if self.path_contains is not None and (path is None or self.path_contains not in path):
            return False
        self.calls += 1
        fail = self.calls > self.after and (self.sticky or self.failures == 0)
        if fail:
            self.failures += 1
        return fail

    def _error(self, operation: str, path: str | None) -> OSError:
        return OSError(self.errno, f"{os.strerror(self.errno)} (injected at {operation})", path)

    def _check(self, operation: str, path: str | None) -> None:
        if self._should_fail(operation, path):
            raise self._error(operation, path)

    # ------------------------------------------------------------ the FileIO methods

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        self._check("open", path)
        fd = super().open(path, flags, mode)
        self._paths[fd] = path
        return fd

    def close(self, fd: int) -> None:
        self._paths.pop(fd, None)
        super().close(fd)

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        path = self._paths.get(fd)
        if self._should_fail("pwrite", path):
            if self.partial:
                super().pwrite(fd, bytes(data[: self.partial]), offset)
            raise self._error("pwrite", path)
        super().pwrite(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        self._check("fdatasync", self._paths.get(fd))
        super().fdatasync(fd)

    def fsync(self, fd: int) -> None:
        self._check("fsync", self._paths.get(fd))
        super().fsync(fd)

    def allocate(self, fd: int, offset: int, length: int) -> None:
        self._check("allocate", self._paths.get(fd))
        super().allocate(fd, offset, length)

    def truncate(self, fd: int, size: int) -> None:
        self._check("truncate", self._paths.get(fd))
        super().truncate(fd, size)

    def fsync_dir(self, path: str) -> None:
        self._check("fsync_dir", path)
        super().fsync_dir(path)
