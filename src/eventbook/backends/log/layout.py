"""Creating a log directory, reading its meta file, quarantining bytes.

A log directory holds `meta.json` (format and log id; its presence marks a complete store),
`lock`, `segments/`, `index/` and, after a recovery or repair, `quarantine/`.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from eventbook.backends.log import format as fmt
from eventbook.backends.log.fileio import FileIO
from eventbook.errors import InvalidInput, StoreCorrupted, StoreUnsupported

_OURS = {
    "snapshots.sqlite",
    "snapshots.sqlite-wal",
    "snapshots.sqlite-shm",
    fmt.META_FILE,
    fmt.META_FILE + ".tmp",
    fmt.LOCK_FILE,
    fmt.SEGMENT_DIR,
    fmt.INDEX_DIR,
    fmt.QUARANTINE_DIR,
}


def read_log_id(root: Path) -> bytes | None:
    """The log id from meta.json; None when there is no store at `root`."""
    path = root / fmt.META_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        meta = json.loads(raw)
        if meta.get("format") != "eventbook-log":
            raise ValueError("not an eventbook log")
        version = meta["format_version"]
        log_id = bytes.fromhex(meta["log_id"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreCorrupted(str(path), 0, f"meta.json is unreadable ({exc})") from None
    if version != fmt.FORMAT_VERSION:
        raise StoreUnsupported(str(root), version, fmt.FORMAT_VERSION)
    return log_id


def check_layout_free(root: Path) -> None:
    """Make `root` if needed; refuse it if it holds files that are not ours."""
    root.mkdir(parents=True, exist_ok=True)
    strangers = sorted(set(os.listdir(root)) - _OURS)
    if strangers:
        raise InvalidInput(
            f"{root} is not an eventbook store and is not empty (it holds {strangers[:3]}); "
            "give an empty or new directory"
        )


def create_layout(root: Path, io: FileIO) -> bytes:
    """Make an empty log at `root` (which must be empty or hold only our own files)."""
    check_layout_free(root)
    for sub in (fmt.SEGMENT_DIR, fmt.INDEX_DIR):
        (root / sub).mkdir(exist_ok=True)
    log_id = os.urandom(16)
    tmp = root / (fmt.META_FILE + ".tmp")
    fd = io.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        io.pwrite(fd, fmt.encode_meta(log_id, datetime.now(UTC)), 0)
        io.fsync(fd)
    finally:
        io.close(fd)
    os.replace(tmp, root / fmt.META_FILE)
    io.fsync_dir(str(root))
    return log_id


def _quarantine_dir(root: Path, io: FileIO) -> Path:
    qdir = root / fmt.QUARANTINE_DIR
    if not qdir.is_dir():
        qdir.mkdir()
        io.fsync_dir(str(root))
    return qdir


def _unique(qdir: Path, stem: str) -> Path:
    """A quarantine file name that is not taken yet (moved bytes are never overwritten)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for n in range(1, 10_000):
        target = qdir / f"{stem}.{stamp}.{n}.bin"
        if not target.exists():
            return target
    raise FileExistsError(f"no free quarantine name for {stem} in {qdir}")


def quarantine(root: Path, io: FileIO, source: str, offset: int, why: str) -> tuple[str, int]:
    """Copy the bytes of `source` from `offset` to its end into quarantine/, durably, then
    cut `source` at `offset`. Returns the quarantine file and how many bytes moved."""
    qdir = _quarantine_dir(root, io)
    target = _unique(qdir, f"{Path(source).name}.{offset}")
    src = io.open(source, os.O_RDWR)
    try:
        size = io.size(src)
        data = io.pread(src, size - offset, offset) if size > offset else b""
        data = data.rstrip(b"\0")  # reserved, never-written space is not worth keeping
        out = io.open(str(target), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            io.pwrite(out, data, 0)
            io.fsync(out)
        finally:
            io.close(out)
        (qdir / f"{target.name}.why.txt").write_text(why + "\n")
        io.fsync_dir(str(qdir))
        io.truncate(src, offset)
        io.fsync(src)
    finally:
        io.close(src)
    return str(target), len(data)


def quarantine_file(root: Path, io: FileIO, source: str, why: str) -> tuple[str, int]:
    """Move a whole file into quarantine/ (a segment after a torn point)."""
    qdir = _quarantine_dir(root, io)
    target = _unique(qdir, f"{Path(source).name}.0")
    size = os.path.getsize(source)
    os.replace(source, target)
    (qdir / f"{target.name}.why.txt").write_text(why + "\n")
    io.fsync_dir(str(qdir))
    io.fsync_dir(str(Path(source).parent))
    return str(target), size
