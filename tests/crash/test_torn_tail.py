"""Torn tails: the last records cut at every byte (an unsynced write the crash tore), and
garbage after the last record. The store opens, shows only whole commits written before the
cut, moves the torn bytes to quarantine/, and appends on from the right position.

The index files used for each trial are the ones from before the torn commits were written,
as after a real crash (the indexes only ever cover synced records); some trials lose the
position index too, so the cut is also found by a rebuild from the start.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import eventbook as eb
from eventbook import limits
from eventbook.store.registry import inspect_store, verify_store

HEADER = 32  # segment header bytes
SEG = Path("segments") / "0000000001.seg"


@dataclass
class Pristine:
    """A store's files before the torn commits, and its segment data after them."""

    meta: bytes
    index: dict[str, bytes]  # index/ files as they were before the last commits
    data: bytes  # segment bytes up to the data end, all commits written
    file_size: int  # segment size with its reserved space
    commits: list[tuple[int, int, int]]  # (start offset, end offset, last position) per commit
    events: list[eb.RecordedEvent]
    tail_from: int  # offset where the torn part (the last commits) starts


BASE_COMMITS = [[("acct-1", 1)], [("acct-2", 2), ("acct-1", 1)], [("acct-3", 1)]] * 3
TAIL_COMMITS = [[("acct-1", 1)], [("acct-2", 1), ("acct-3", 1), ("acct-2", 1)]]  # 4 records


def _events(spec: list[tuple[str, int]], tag: str) -> list[eb.NewEvent]:
    out = []
    for i, (stream, n) in enumerate(spec):
        for j in range(n):
            out.append(eb.NewEvent(stream, "Noted", {"tag": tag, "i": i, "j": j, "text": "t" * 9}))
    return out


def _build(root: Path) -> Pristine:
    s = eb.open_store(root)
    for n, spec in enumerate(BASE_COMMITS):
        s.append(_events(spec, f"b{n}"), commit_id=f"b{n}")
    s.close()
    index = {p.name: p.read_bytes() for p in (root / "index").iterdir()}
    s = eb.open_store(root)
    for n, spec in enumerate(TAIL_COMMITS):
        s.append(_events(spec, f"t{n}"), commit_id=f"t{n}")
    events = list(s.read_all())
    s.close()
    frames = [f for f in inspect_store(root) if f.length]
    commits = []
    for f in frames:
        if f.commit_index == 0:
            commits.append([f.offset, 0, 0])
        commits[-1][1:] = [f.offset + f.length, f.position]
    seg = (root / SEG).read_bytes()
    end = commits[-1][1]
    assert not seg[end:].strip(b"\0"), "reserved space after the data is zeros"
    base_records = sum(n for spec in BASE_COMMITS for _, n in spec)
    tail_from = next(f.offset for f in frames if f.position == base_records + 1)
    return Pristine(
        (root / "meta.json").read_bytes(),
        index,
        seg[:end],
        len(seg),
        [tuple(c) for c in commits],
        events,
        tail_from,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    # A small reservation keeps each trial fast (recovery reads the reserved space too).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(limits, "segment_allocate_bytes", 32 * 1024)
        return _build(tmp_path_factory.mktemp("pristine") / "store")


def _make(
    root: Path, p: Pristine, data: bytes, *, zero_fill: bool = True, lose_index: bool = False
) -> None:
    """A store whose segment holds `data`, then zeros up to its reserved size (or nothing)."""
    (root / "segments").mkdir(parents=True)
    (root / "index").mkdir()
    (root / "meta.json").write_bytes(p.meta)
    with open(root / SEG, "wb") as f:
        f.write(data)
        if zero_fill:
            f.truncate(p.file_size)
    if not lose_index:
        for name, raw in p.index.items():
            (root / "index" / name).write_bytes(raw)


def _quarantined(root: Path) -> bytes:
    qdir = root / "quarantine"
    if not qdir.exists():
        return b""
    return b"".join(q.read_bytes() for q in sorted(qdir.iterdir()) if q.suffix == ".bin")


def _expect_reopen(root: Path, p: Pristine, head: int, where: str) -> None:
    s = eb.open_store(root)
    try:
        assert s.head_position() == head, where
        assert list(s.read_all()) == p.events[:head], where
        versions: dict[str, int] = {}
        for e in p.events[:head]:
            versions[e.stream] = e.version
        for stream in ("acct-1", "acct-2", "acct-3"):
            assert s.stream_version(stream) == versions.get(stream, 0), where
        r = s.append(
            [eb.NewEvent("acct-1", "After", {"n": 1}), eb.NewEvent("acct-9", "After", {"n": 2})],
            commit_id="after",
        )
        assert (r.first_position, r.last_position) == (head + 1, head + 2), where
        assert r.versions == {"acct-1": versions.get("acct-1", 0) + 1, "acct-9": 1}, where
        # the kept tail commits still answer a retry with their first result
        for n, spec in enumerate(TAIL_COMMITS):
            kept = [e for e in p.events[:head] if e.commit_id == f"t{n}"]
            if kept:
                again = s.append(_events(spec, f"t{n}"), commit_id=f"t{n}")
                assert again.first_position == kept[0].position, where
                assert s.head_position() == head + 2, f"{where}: a retry wrote again"
    finally:
        s.close()
    s = eb.open_store(root)
    try:
        got = list(s.read_all())
        assert got[:head] == p.events[:head], where
        assert [e.type for e in got[head:]] == ["After", "After"], where
        assert [e.position for e in got] == list(range(1, len(got) + 1)), where
    finally:
        s.close()
    report = verify_store(root)
    assert report.ok, f"{where}: {report.problems}"


def _intact_head(p: Pristine, cut: int) -> tuple[int, int]:
    """(head, torn start) after cutting the data at `cut`: commits whose bytes from the cut
    on were zeros anyway are intact; the first other commit starts the torn part."""
    head, torn = 0, cut
    for start, end, last in p.commits:
        if end <= cut or not p.data[cut:end].strip(b"\0"):
            head = last
        else:
            torn = start
            break
    return head, torn


def test_cut_at_every_byte_of_the_last_records(pristine: Pristine, tmp_path: Path) -> None:
    p = pristine
    cuts = range(p.tail_from, len(p.data) + 1)
    assert len(cuts) > 300, "the last records are what this test cuts"
    quarantined_trials = 0
    for cut in cuts:
        root = tmp_path / f"cut-{cut}"
        lose_index = cut % 7 == 0
        _make(root, p, p.data[:cut], lose_index=lose_index)
        head, torn = _intact_head(p, cut)
        where = f"cut at byte {cut} (torn part from {torn}, lose_index={lose_index})"
        s = eb.open_store(root)
        s.close()
        moved = _quarantined(root)
        assert moved == p.data[torn:cut].rstrip(b"\0"), where
        quarantined_trials += bool(moved)
        assert os.path.getsize(root / SEG) >= torn, where
        _expect_reopen(root, p, head, where)
        shutil.rmtree(root)
    assert quarantined_trials > len(cuts) // 2


def test_truncated_file_without_reserved_space(pristine: Pristine, tmp_path: Path) -> None:
    """The same cuts, with the file ending at the cut (no zero-filled space after it)."""
    p = pristine
    for cut in range(p.tail_from, len(p.data) + 1, 5):
        root = tmp_path / f"cut-{cut}"
        _make(root, p, p.data[:cut], zero_fill=False)
        head, torn = _intact_head(p, cut)
        where = f"file truncated at byte {cut}"
        s = eb.open_store(root)
        s.close()
        assert _quarantined(root) == p.data[torn:cut].rstrip(b"\0"), where
        _expect_reopen(root, p, head, where)
        shutil.rmtree(root)


@pytest.mark.parametrize("looks_like_a_record", [False, True])
def test_garbage_after_the_last_record(
    pristine: Pristine, tmp_path: Path, looks_like_a_record: bool
) -> None:
    seed = int(os.environ.get("EVENTBOOK_SEED") or random.randrange(2**32))
    print(f"garbage seed={seed} (replay: EVENTBOOK_SEED={seed})")
    rng = random.Random(seed)
    p = pristine
    head = p.commits[-1][2]
    for trial in range(40):
        garbage = bytearray(rng.randbytes(rng.randrange(1, 600)))
        garbage[0] = garbage[0] or 1
        if looks_like_a_record:
            garbage[:4] = b"EBR1"
        root = tmp_path / f"g-{trial}"
        _make(root, p, p.data + bytes(garbage))
        where = f"seed={seed} trial={trial} garbage={bytes(garbage[:16]).hex()}..."
        s = eb.open_store(root)
        s.close()
        assert _quarantined(root) == bytes(garbage).rstrip(b"\0"), where
        _expect_reopen(root, p, head, where)
        shutil.rmtree(root)


def test_reader_sees_only_whole_commits_of_a_torn_tail(pristine: Pristine, tmp_path: Path) -> None:
    """A read-only open of a torn store (no writer) cuts nothing and shows whole commits."""
    p = pristine
    for cut in range(p.tail_from, len(p.data) + 1, 3):
        root = tmp_path / f"cut-{cut}"
        _make(root, p, p.data[:cut])
        head, _ = _intact_head(p, cut)
        s = eb.open_store(root, readonly=True)
        try:
            assert s.head_position() == head, cut
            assert list(s.read_all()) == p.events[:head], cut
        finally:
            s.close()
        assert (root / SEG).read_bytes()[:cut] == p.data[:cut], "a reader changes nothing"
        assert not (root / "quarantine").exists()
        shutil.rmtree(root)
