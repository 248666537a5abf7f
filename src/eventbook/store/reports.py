"""What `verify`, `repair` and `inspect` report, for every backend that supports them."""

from __future__ import annotations

import msgspec


class Problem(msgspec.Struct, frozen=True):
    """One thing found wrong: where (file and byte offset, or position) and what."""

    what: str
    path: str | None = None
    offset: int | None = None
    position: int | None = None


class VerifyReport(msgspec.Struct):
    url: str
    events_checked: int = 0
    commits_checked: int = 0
    head_position: int = 0
    problems: list[Problem] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class RepairReport(msgspec.Struct):
    url: str
    head_position: int = 0
    quarantined: list[str] = msgspec.field(default_factory=list)  # files the moved bytes went to
    bytes_moved: int = 0
    indexes_rebuilt: list[str] = msgspec.field(default_factory=list)


class FrameInfo(msgspec.Struct, frozen=True):
    """The header of one stored record, as `eventbook inspect` shows it."""

    segment: str
    offset: int
    length: int
    position: int
    version: int
    commit_count: int
    commit_index: int
    stream: str
    type: str
    crc_ok: bool
