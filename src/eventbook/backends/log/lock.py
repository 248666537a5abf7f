"""The writer lock: one writer process per log, any number of readers.

An exclusive flock on the lock file, which also holds the writer's pid so that a second
writer can be told who holds it. The kernel drops the lock when the process dies, kill -9
included, so a crashed writer never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from eventbook.backends.log import format as fmt
from eventbook.errors import StoreLocked

_ATTEMPTS = 5


class WriterLock:
    def __init__(self, root: Path) -> None:
        self.path = root / fmt.LOCK_FILE
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        for attempt in range(_ATTEMPTS):
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A reader's writer_alive() probe holds a shared lock for microseconds:
                # look again a few times before saying that a writer holds it.
                if attempt == _ATTEMPTS - 1:
                    pid = holder_pid(root)
                    os.close(self.fd)
                    raise StoreLocked(str(root), pid) from None
                time.sleep(0.005)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def holder_pid(root: Path) -> int | None:
    try:
        text = (root / fmt.LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def writer_alive(root: Path) -> bool:
    """Whether some process holds the writer lock right now."""
    try:
        fd = os.open(root / fmt.LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops a shared lock we may have taken
    return False
