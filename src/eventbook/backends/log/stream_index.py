"""The stream index: which positions belong to which stream, and which commit ids were used.

Two parts. `StreamIndex` is an SQLite file (WAL, synchronous=NORMAL: consistent after a
crash, never synced per commit) holding everything up to `indexed_through`. `Tail` holds the
positions after that in memory; the writer moves it into SQLite every
`limits.index_commit_events_max` events, and a reader fills its own Tail by scanning the log.
Both are derived from the log and rebuilt from it when lost, stale or from another log.
"""

from __future__ import annotations

import bisect
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from eventbook.backends.log import format as fmt
from eventbook.store.commit import CommitRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    stream TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (stream, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (
    commit_id TEXT PRIMARY KEY, first_position INTEGER NOT NULL,
    last_position INTEGER NOT NULL, digest BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""

Row = tuple[str, int, int]  # stream, version, position
_CACHE_KIB = 64 * 1024  # SQLite page cache of the writer's connection


class Tail:
    """Index entries for positions after `base`, kept in memory."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.rows: list[Row] = []
        self.commits: dict[str, CommitRecord] = {}
        self._streams: dict[str, tuple[int, list[int]]] = {}  # stream -> (first version, positions)

    def add(self, rows: Iterable[Row], commit: CommitRecord | None) -> None:
        for row in rows:
            stream, version, position = row
            self.rows.append(row)
            entry = self._streams.get(stream)
            if entry is None:
                self._streams[stream] = (version, [position])
            else:
                assert entry[0] + len(entry[1]) == version, "versions are contiguous"
                entry[1].append(position)
        if commit is not None:
            self.commits[commit.commit_id] = commit

    def version(self, stream: str) -> int | None:
        entry = self._streams.get(stream)
        return None if entry is None else entry[0] + len(entry[1]) - 1

    def positions(self, stream: str, first: int, last: int) -> list[int]:
        entry = self._streams.get(stream)
        if entry is None:
            return []
        lo = max(first, entry[0]) - entry[0]
        return entry[1][lo : last - entry[0] + 1]

    def first_version(self, stream: str) -> int | None:
        entry = self._streams.get(stream)
        return None if entry is None else entry[0]

    def streams(self) -> dict[str, tuple[int, int]]:
        return {s: (v + len(p) - 1, p[-1]) for s, (v, p) in self._streams.items()}

    def peek(self, upto: int) -> tuple[list[Row], list[CommitRecord]]:
        """The rows and commits at positions <= upto (they stay here until dropped)."""
        cut = bisect.bisect_right(self.rows, upto, key=lambda row: row[2])
        return self.rows[:cut], [c for c in self.commits.values() if c.last_position <= upto]

    def drop(self, upto: int) -> None:
        """Forget the rows and commits at positions <= upto (they are in SQLite now)."""
        cut = bisect.bisect_right(self.rows, upto, key=lambda row: row[2])
        rest = self.rows[cut:]
        kept = {c.commit_id: c for c in self.commits.values() if c.last_position > upto}
        self.rows, self.commits, self._streams = [], {}, {}
        self.base = max(self.base, upto)
        self.add(rest, None)
        self.commits = kept

    def take(self, upto: int) -> tuple[list[Row], list[CommitRecord]]:
        """Remove and return the rows and commits at positions <= upto."""
        found = self.peek(upto)
        self.drop(upto)
        return found

    def __len__(self) -> int:
        return len(self.rows)


class StreamIndex:
    """The SQLite part of the stream index."""

    def __init__(self, root: Path, log_id: bytes, *, writable: bool) -> None:
        path = root / fmt.INDEX_DIR / fmt.STREAM_INDEX_FILE
        self.db: sqlite3.Connection | None = None  # for queries: sees committed rows only
        self._wdb: sqlite3.Connection | None = None  # for writes (the writer's flusher)
        self.indexed_through = 0
        self.last_row: Row | None = None
        if writable:
            self._wdb = self._connect_writable(path, log_id)
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA query_only=1")
        elif path.exists():
            try:
                self.db = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
                )
                if self._meta("log_id") != log_id.hex():
                    self.db.close()
                    self.db = None
            except sqlite3.Error:
                self.db = None
        self.refresh()

    def _connect_writable(self, path: Path, log_id: bytes) -> sqlite3.Connection:
        for attempt in (1, 2):
            try:
                db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
                db.executescript(_SCHEMA)
                owner = db.execute("SELECT value FROM meta WHERE key='log_id'").fetchone()
                if owner is None or owner[0] != log_id.hex():
                    db.executescript("DELETE FROM events; DELETE FROM commits; DELETE FROM meta;")
                    db.execute("INSERT INTO meta VALUES ('log_id', ?)", (log_id.hex(),))
                return db
            except sqlite3.DatabaseError:
                if attempt == 2:
                    raise
                for suffix in ("", "-wal", "-shm"):  # damaged: derived data, so rebuild it
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _meta(self, key: str) -> object:
        assert self.db is not None
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def refresh(self) -> int:
        if self.db is None:
            self.indexed_through, self.last_row = 0, None
            return 0
        try:
            through = self._meta("indexed_through")
            last = self._meta("last_row")
        except sqlite3.Error:
            through, last = None, None
        self.indexed_through = int(through) if through is not None else 0
        if isinstance(last, str) and last:
            stream, version, position = last.rsplit("\x1f", 2)
            self.last_row = (stream, int(version), int(position))
        else:
            self.last_row = None
        return self.indexed_through

    def reset(self) -> None:
        assert self._wdb is not None
        self._wdb.executescript(
            "DELETE FROM events; DELETE FROM commits; DELETE FROM meta WHERE key != 'log_id';"
        )
        self.indexed_through, self.last_row = 0, None

    def write(self, rows: list[Row], commits: list[CommitRecord], through: int) -> None:
        """Add rows and commits and move indexed_through, in one transaction."""
        assert self._wdb is not None and through >= self.indexed_through
        db = self._wdb
        db.execute("BEGIN")
        try:
            db.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)
            db.executemany(
                "INSERT OR REPLACE INTO commits VALUES (?, ?, ?, ?)",
                [(c.commit_id, c.first_position, c.last_position, c.digest) for c in commits],
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('indexed_through', ?)", (through,))
            if rows:
                last = rows[-1]
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('last_row', ?)",
                    (f"{last[0]}\x1f{last[1]}\x1f{last[2]}",),
                )
                self.last_row = last
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.indexed_through = through

    def version(self, stream: str) -> int:
        if self.db is None:
            return 0
        row = self.db.execute(
            "SELECT max(version) FROM events WHERE stream=?", (stream,)
        ).fetchone()
        return row[0] or 0

    def positions(self, stream: str, first: int, last: int) -> list[int]:
        if self.db is None:
            return []
        cur = self.db.execute(
            "SELECT position FROM events WHERE stream=? AND version BETWEEN ? AND ? "
            "ORDER BY version",
            (stream, first, last),
        )
        return [p for (p,) in cur]

    def commit(self, commit_id: str) -> CommitRecord | None:
        if self.db is None:
            return None
        row = self.db.execute(
            "SELECT first_position, last_position, digest FROM commits WHERE commit_id=?",
            (commit_id,),
        ).fetchone()
        return None if row is None else CommitRecord(commit_id, bytes(row[2]), row[0], row[1])

    def streams(self) -> Iterator[tuple[str, int, int]]:
        if self.db is None:
            return iter(())
        return iter(
            self.db.execute(
                "SELECT stream, max(version), max(position) FROM events "
                "GROUP BY stream ORDER BY stream"
            ).fetchall()
        )

    def close(self) -> None:
        for db in (self.db, self._wdb):
            if db is not None:
                db.close()
        self.db = self._wdb = None


def remove_files(root: Path) -> None:
    path = root / fmt.INDEX_DIR / fmt.STREAM_INDEX_FILE
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
