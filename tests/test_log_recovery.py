"""Recovery of the embedded log: lost, stale, foreign or damaged index files are rebuilt from
the log; `repair` quarantines (never deletes); the writer lock names its holder; readers in
other processes see whole commits only; a disk that refuses a write or a sync (ENOSPC, EIO)
turns the store read-only without losing anything acknowledged; segment rollover, and crashes
around it.

The crash-at-random-points, torn-tail and bit-flip tests are in tests/crash/.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import eventbook as eb
from eventbook import limits
from eventbook.backends.log.store import LogStore
from eventbook.store.registry import inspect_store, repair_store, verify_store
from eventbook.testing.faults import FaultyFileIO

STREAMS = ["acct-1", "acct-2", "acct-3", "order-7"]
INDEX = Path("index")
POSITIONS = INDEX / "positions.idx"
SQLITE = INDEX / "streams.sqlite3"


# ------------------------------------------------------------------------------- helpers


def _events(n: int, *, pad: int = 20) -> list[eb.NewEvent]:
    """Commit number n: one to three events, over one or several streams."""
    count = 1 + n % 3
    return [
        eb.NewEvent(
            STREAMS[(n + i) % len(STREAMS)],
            "Booked",
            {"n": n, "i": i, "of": count, "text": "p" * pad},
        )
        for i in range(count)
    ]


def _fill(store: eb.EventStore, first: int, count: int, **kw: int) -> dict[str, eb.AppendResult]:
    return {
        f"c{n}": store.append(_events(n, **kw), commit_id=f"c{n}")
        for n in range(first, first + count)
    }


def _build(root: Path, commits: int = 60, **kw: int) -> list[eb.RecordedEvent]:
    s = eb.open_store(root)
    _fill(s, 0, commits, **kw)
    events = list(s.read_all())
    s.close()
    return events


def _assert_reads(s: eb.EventStore, events: list[eb.RecordedEvent]) -> None:
    """Every read path agrees with `events` (the whole log)."""
    assert s.head_position() == len(events)
    assert list(s.read_all()) == events
    for after in (0, 1, len(events) // 2, len(events) - 1):
        assert list(s.read_all(after=after)) == events[after:]
    for e in events:
        assert s.read_event(e.position) == e
    infos = []
    for stream in STREAMS:
        mine = [e for e in events if e.stream == stream]
        assert list(s.read_stream(stream)) == mine
        assert list(s.read_stream(stream, backward=True)) == mine[::-1]
        assert s.stream_version(stream) == len(mine)
        if mine:
            infos.append(eb.StreamInfo(stream, len(mine), mine[-1].position))
    assert list(s.streams()) == infos


def _assert_store(root: Path, events: list[eb.RecordedEvent], *, readonly: bool = False) -> None:
    s = eb.open_store(root, readonly=readonly)
    try:
        _assert_reads(s, events)
    finally:
        s.close()


def _assert_retries(root: Path, events: list[eb.RecordedEvent], pad: int = 20) -> None:
    """Commit ids answer retries with the first result, and refuse different content."""
    s = eb.open_store(root)
    try:
        head = s.head_position()
        firsts: dict[str, int] = {}
        for e in events:
            if e.commit_id:
                firsts.setdefault(e.commit_id, e.position)
        ids = list(firsts)
        for cid in (ids[0], ids[1], ids[len(ids) // 2], ids[-1]):
            n = int(cid[1:])
            again = s.append(_events(n, pad=pad), commit_id=cid)
            assert again.first_position == firsts[cid]
            assert again.last_position == firsts[cid] + len(_events(n, pad=pad)) - 1
        with pytest.raises(eb.DuplicateCommit):
            s.append([eb.NewEvent("acct-1", "Other", {})], commit_id="c3")
        assert s.head_position() == head
    finally:
        s.close()


def _ok(root: Path) -> None:
    report = verify_store(root)
    assert report.ok, report.problems


# ------------------------------------------------------------------- the position index


def test_lost_position_index_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "s"
    events = _build(root)
    (root / POSITIONS).unlink()
    _assert_store(root, events, readonly=True)  # a reader reads the log without the index
    _assert_store(root, events)
    assert (root / POSITIONS).stat().st_size == 32 + 16 * len(events)
    _assert_retries(root, events)
    _ok(root)


def test_stale_position_index_catches_up(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _build(root, 20)
    old = (root / POSITIONS).read_bytes()
    s = eb.open_store(root)
    _fill(s, 20, 40)
    events = list(s.read_all())
    s.close()
    (root / POSITIONS).write_bytes(old)
    _assert_store(root, events, readonly=True)
    _assert_store(root, events)
    assert (root / POSITIONS).stat().st_size == 32 + 16 * len(events)
    _ok(root)


def test_position_index_from_another_store_is_rebuilt(tmp_path: Path) -> None:
    root, other = tmp_path / "s", tmp_path / "other"
    events = _build(root, 30)
    _build(other, 90, pad=5)  # longer, and its records sit at other offsets
    shutil.copy(other / POSITIONS, root / POSITIONS)
    assert verify_store(root).problems  # verify sees the foreign index
    _assert_store(root, events, readonly=True)
    _assert_store(root, events)
    _ok(root)


@pytest.mark.parametrize("tail", ["zeros", "garbage"])
def test_position_index_with_a_bad_tail(tmp_path: Path, tail: str) -> None:
    """Entries past the log (after a power loss the index file may end in zeros or junk)."""
    root = tmp_path / "s"
    events = _build(root, 30)
    extra = bytes(48) if tail == "zeros" else random.Random(1).randbytes(48)
    with open(root / POSITIONS, "ab") as f:
        f.write(extra)
    _assert_store(root, events, readonly=True)
    _assert_store(root, events)
    _ok(root)


@pytest.mark.parametrize("cut_entries", [1, 2])
def test_position_index_ending_inside_a_commit(tmp_path: Path, cut_entries: int) -> None:
    """The index is not synced: a crash may leave it ending in the middle of a commit. The
    commit is acknowledged and whole in the log, so it must neither be cut nor half-shown."""
    root = tmp_path / "s"
    events = _build(root, 30)
    s = eb.open_store(root)
    s.append([eb.NewEvent("acct-1", "Split", {"i": i}) for i in range(3)], commit_id="three")
    events = list(s.read_all())
    s.close()
    with open(root / POSITIONS, "r+b") as f:
        f.truncate(32 + 16 * (len(events) - cut_entries))
    _assert_store(root, events, readonly=True)  # a reader shows the whole commit
    _assert_store(root, events)
    assert not (root / "quarantine").exists()
    _ok(root)


def test_reader_never_shows_half_a_commit_from_the_index(tmp_path: Path) -> None:
    root = tmp_path / "s"
    events = _build(root, 10)
    writer = eb.open_store(root)
    reader = eb.open_store(root, readonly=True)
    writer.append([eb.NewEvent("acct-2", "Split", {"i": i}) for i in range(4)], commit_id="four")
    full = (root / POSITIONS).read_bytes()
    with open(root / POSITIONS, "r+b") as f:  # as if seen halfway through the index write
        f.truncate(len(full) - 16 * 2)
    assert reader.head_position() == len(events)
    with open(root / POSITIONS, "r+b") as f:
        f.write(full)
    assert reader.head_position() == len(events) + 4
    assert [e.type for e in reader.read_all(after=len(events))] == ["Split"] * 4
    reader.close()
    writer.close()


# --------------------------------------------------------------------- the stream index


def _sqlite_files(root: Path) -> list[Path]:
    return [p for p in (root / INDEX).iterdir() if p.name.startswith("streams.sqlite3")]


def test_lost_stream_index_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "s"
    events = _build(root)
    for p in _sqlite_files(root):
        p.unlink()
    _assert_store(root, events, readonly=True)
    _assert_store(root, events)
    _assert_retries(root, events)
    _ok(root)


@pytest.mark.parametrize("damage", ["all garbage", "garbage pages", "truncated"])
def test_damaged_stream_index_is_rebuilt(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "s"
    events = _build(root, 300)
    path = root / SQLITE
    raw = path.read_bytes()
    rng = random.Random(2)
    if damage == "all garbage":
        path.write_bytes(rng.randbytes(len(raw)))
    elif damage == "garbage pages":  # keep SQLite's header, scramble the pages after it
        path.write_bytes(raw[:100] + rng.randbytes(len(raw) - 100))
    else:
        path.write_bytes(raw[: len(raw) // 3])
    _assert_store(root, events, readonly=True)
    _assert_store(root, events)
    _assert_retries(root, events)
    _ok(root)


def test_stream_index_from_another_store_is_rebuilt(tmp_path: Path) -> None:
    root, other = tmp_path / "s", tmp_path / "other"
    events = _build(root, 30)
    _build(other, 45, pad=3)
    for p in _sqlite_files(root):
        p.unlink()
    for p in _sqlite_files(other):
        shutil.copy(p, root / INDEX / p.name)
    _assert_store(root, events, readonly=True)
    _assert_store(root, events)
    _assert_retries(root, events)
    _ok(root)


def test_stale_stream_index_catches_up(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _build(root, 20)
    saved = {p.name: p.read_bytes() for p in _sqlite_files(root)}
    s = eb.open_store(root)
    _fill(s, 20, 50)
    events = list(s.read_all())
    s.close()
    for p in _sqlite_files(root):
        p.unlink()
    for name, raw in saved.items():
        (root / INDEX / name).write_bytes(raw)
    _assert_store(root, events, readonly=True)
    _assert_store(root, events)
    _assert_retries(root, events)
    _ok(root)


def test_stream_index_ahead_of_a_repaired_log_is_rebuilt(tmp_path: Path) -> None:
    """An index copy that knows positions the log no longer has (it was cut by a repair)."""
    root = tmp_path / "s"
    events = _build(root, 40)
    saved = {p.name: p.read_bytes() for p in _sqlite_files(root)}
    offset = _record_offset(root, len(events) // 2)
    _flip(root / "segments" / "0000000001.seg", offset + 45)
    repair_store(root)
    s = eb.open_store(root)
    kept = list(s.read_all())
    s.close()
    assert 0 < len(kept) < len(events) // 2
    for name, raw in saved.items():
        (root / INDEX / name).write_bytes(raw)
    _assert_store(root, kept)
    _ok(root)


# ------------------------------------------------------------------------------- repair


def _record_offset(root: Path, position: int, segment: int | None = None) -> int:
    return next(f.offset for f in inspect_store(root, segment) if f.position == position)


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))


def _data_bytes(root: Path) -> int:
    """Bytes of the log and of quarantine/ (reserved, never-written zeros not counted)."""
    files = list((root / "segments").iterdir())
    if (root / "quarantine").exists():
        files += [p for p in (root / "quarantine").iterdir() if p.suffix == ".bin"]
    return sum(len(p.read_bytes().rstrip(b"\0")) for p in files)


@pytest.mark.parametrize("segments", [1, 4])
def test_repair_quarantines_from_a_damaged_record(
    tmp_path: Path, segments: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "s"
    if segments > 1:
        monkeypatch.setattr(limits, "segment_bytes_max", 24 * 1024)
        monkeypatch.setattr(limits, "segment_allocate_bytes", 8 * 1024)
    events = _build(root, 200, pad=200)
    seg_files = sorted((root / "segments").iterdir())
    assert len(seg_files) >= segments
    # damage a record in the middle of the second segment (or of the only one)
    victim_seg = 2 if segments > 1 else 1
    frames = [f for f in inspect_store(root, victim_seg) if f.length]
    victim = frames[len(frames) // 2]
    if victim.commit_index:
        victim = next(f for f in frames if f.position > victim.position and f.commit_index == 0)
    path = seg_files[victim_seg - 1]
    original = path.read_bytes()
    later = [p.read_bytes() for p in seg_files[victim_seg:]]
    _flip(path, victim.offset + victim.length - 3)
    before = _data_bytes(root)

    s = eb.open_store(root)  # the index covers it: open works, reading it does not
    with pytest.raises(eb.StoreCorrupted) as caught:
        list(s.read_all())
    assert caught.value.path == str(path) and caught.value.offset == victim.offset
    s.close()
    report = verify_store(root)
    assert [(p.path, p.offset) for p in report.problems][:1] == [(str(path), victim.offset)]

    repaired = repair_store(root)
    assert repaired.head_position == victim.position - 1
    assert repaired.bytes_moved > 0 and repaired.quarantined
    assert _data_bytes(root) >= before, "repair never deletes"
    q = root / "quarantine"
    moved = sorted((p for p in q.iterdir() if p.suffix == ".bin"), key=lambda p: p.name)
    cut = bytearray(original)
    cut[victim.offset + victim.length - 3] ^= 0x10
    assert moved[0].name.startswith(path.name)
    assert moved[0].read_bytes() == bytes(cut[victim.offset :]).rstrip(b"\0")
    assert [p.read_bytes() for p in moved[1:]] == later  # later segments moved whole
    assert path.read_bytes() == original[: victim.offset]
    kept = events[: victim.position - 1]
    _assert_store(root, kept)
    _ok(root)
    s = eb.open_store(root)
    r = s.append([eb.NewEvent("acct-1", "After", {})])
    assert r.first_position == victim.position
    s.close()
    _ok(root)


# -------------------------------------------------------------------------------- locks

_HOLDER = """
import sys, eventbook as eb
s = eb.open_store(sys.argv[1])
s.append([eb.NewEvent("acct-1", "Held", {})])
print("READY", flush=True)
sys.stdin.readline()
"""


def test_second_writer_gets_store_locked_naming_the_holder(tmp_path: Path) -> None:
    root = tmp_path / "s"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "READY\n"
        with pytest.raises(eb.StoreLocked) as caught:
            eb.open_store(root)
        assert caught.value.pid == holder.pid
        assert str(holder.pid) in str(caught.value)
        with pytest.raises(eb.StoreLocked):
            repair_store(root)
        r = eb.open_store(root, readonly=True)  # readers are welcome
        assert [e.type for e in r.read_all()] == ["Held"]
        with pytest.raises(eb.StoreReadOnly):
            r.append([eb.NewEvent("acct-1", "No", {})])
        r.close()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        s = eb.open_store(root)  # kill -9 leaves no stale lock behind
        assert s.head_position() == 1
        s.close()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_second_open_in_the_same_process_is_locked(tmp_path: Path) -> None:
    root = tmp_path / "s"
    s = eb.open_store(root)
    try:
        with pytest.raises(eb.StoreLocked) as caught:
            eb.open_store(root)
        assert caught.value.pid == os.getpid()
    finally:
        s.close()
    eb.open_store(root).close()  # released on close


# ------------------------------------------------- readers in another process, live

_READER = """
import json, sys, time, eventbook as eb
root, last_commit, names = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
s = eb.open_store(root, readonly=True)
heads, seen, problems = set(), 0, []
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    head = s.head_position()
    if head:
        e = s.read_event(head)
        heads.add(head)
        if e.data["i"] != e.data["of"] - 1:
            problems.append(f"head {head} is inside commit {e.data['n']}")
    for e in s.read_all(after=seen):
        if e.position != seen + 1:
            problems.append(f"gap before {e.position}")
        seen = e.position
    if seen and s.read_event(seen).data["n"] == last_commit and seen == head:
        break
    time.sleep(0.001)
versions = {x: s.stream_version(x) for x in names}
streams = {x: [e.position for e in s.read_stream(x)] for x in names}
print(json.dumps({"heads": len(heads), "seen": seen, "problems": problems[:5],
                  "versions": versions, "streams": streams}))
"""


def test_reader_process_sees_whole_commits_and_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader process polls while this process writes, across segment rollovers."""
    monkeypatch.setattr(limits, "segment_bytes_max", 32 * 1024)
    monkeypatch.setattr(limits, "segment_allocate_bytes", 8 * 1024)
    monkeypatch.setattr(limits, "index_commit_events_max", 16)
    root = tmp_path / "s"
    commits = 600
    s = eb.open_store(root)
    s.append(_events(0), commit_id="c0")
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(root), str(commits - 1), json.dumps(STREAMS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for n in range(1, commits):
            s.append(_events(n, pad=150), commit_id=f"c{n}")
            if n % 20 == 0:
                time.sleep(0.003)
        out, err = reader.communicate(timeout=90)
    finally:
        reader.kill()
        reader.wait(timeout=30)
    assert reader.returncode == 0, err
    got = json.loads(out)
    events = list(s.read_all())
    assert len(list((root / "segments").iterdir())) > 3, "the writer rolled over"
    assert got["problems"] == []
    assert got["seen"] == len(events)
    assert got["heads"] > 5, "the reader saw the log grow"
    assert got["versions"] == {x: s.stream_version(x) for x in STREAMS}
    assert got["streams"] == {x: [e.position for e in events if e.stream == x] for x in STREAMS}
    s.close()


def test_subscription_in_a_reader_process_follows_the_writer(tmp_path: Path) -> None:
    root = tmp_path / "s"
    s = eb.open_store(root)
    s.append(_events(0), commit_id="c0")
    code = (
        "import sys, eventbook as eb\n"
        "s = eb.open_store(sys.argv[1], readonly=True)\n"
        "for e in s.subscribe(after=0, idle_timeout=20):\n"
        "    print(e.position, e.commit_id, flush=True)\n"
        "    if e.commit_id == 'c99' and e.data['i'] == e.data['of'] - 1: break\n"
    )
    follower = subprocess.Popen(
        [sys.executable, "-c", code, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for n in range(1, 100):
            s.append(_events(n), commit_id=f"c{n}")
            time.sleep(0.001)
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
        follower.wait(timeout=30)
    assert follower.returncode == 0, err
    events = list(s.read_all())
    assert out.split("\n")[:-1] == [f"{e.position} {e.commit_id}" for e in events]
    s.close()


# -------------------------------------------------- the disk says no: ENOSPC and EIO

FAULTS = {
    "pwrite ENOSPC": dict(fail_on="pwrite", errno=errno.ENOSPC, path_contains="segments"),
    "pwrite EIO torn": dict(
        fail_on="pwrite", errno=errno.EIO, path_contains="segments", partial=50
    ),
    "fdatasync EIO": dict(fail_on="fdatasync", errno=errno.EIO, path_contains="segments"),
    "fdatasync ENOSPC": dict(fail_on="fdatasync", errno=errno.ENOSPC, path_contains="segments"),
    "allocate ENOSPC": dict(fail_on="allocate", errno=errno.ENOSPC, path_contains="segments"),
    "index pwrite EIO": dict(fail_on="pwrite", errno=errno.EIO, path_contains="positions"),
    "fdatasync EIO once": dict(
        fail_on="fdatasync", errno=errno.EIO, path_contains="segments", sticky=False
    ),
}


def _big_commit() -> list[eb.NewEvent]:
    return [eb.NewEvent(STREAMS[i], "Big", {"i": i, "blob": "b" * 3000}) for i in range(3)]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_disk_failure_turns_the_store_read_only(
    tmp_path: Path, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small reservations, so that the failing (big) commit needs to allocate space.
    monkeypatch.setattr(limits, "segment_allocate_bytes", 4096)
    root = tmp_path / "s"
    io = FaultyFileIO(**FAULTS[fault], armed=False)  # type: ignore[arg-type]
    s = LogStore.open(root, io=io)
    acked = _fill(s, 0, 30)
    events = list(s.read_all())
    io.arm()
    with pytest.raises(eb.StoreFailed) as caught:
        s.append(_big_commit(), commit_id="x")
    assert io.failures >= 1, "the fault was never hit"
    assert isinstance(caught.value.cause, OSError)
    assert caught.value.cause.errno == FAULTS[fault]["errno"]
    io.disarm()  # even with a healthy disk again, the store stays read-only
    with pytest.raises(eb.StoreFailed):
        s.append([eb.NewEvent("acct-1", "Later", {})], commit_id="y")
    with pytest.raises(eb.StoreFailed):
        s.append(_big_commit(), commit_id="x")
    _assert_reads(s, events)  # reads still work and show only acknowledged commits
    assert s.stats()["failed"]
    s.close()

    s = eb.open_store(root)  # the real FileIO
    after = list(s.read_all())
    assert after[: len(events)] == events, "every acknowledged append is there, unchanged"
    failed = after[len(events) :]
    assert [e.commit_id for e in failed] in ([], ["x"] * 3), "wholly present or wholly absent"
    for e, want in zip(failed, _big_commit(), strict=False):
        assert (e.stream, e.type, e.data) == (want.stream, want.type, want.data)
    again = s.append(_big_commit(), commit_id="x")
    assert again.first_position == len(events) + 1
    assert [e.commit_id for e in s.read_all(after=len(events))] == ["x"] * 3, "exactly one copy"
    for cid, result in acked.items():
        n = int(cid[1:])
        assert s.append(_events(n), commit_id=cid).first_position == result.first_position
    s.close()
    _ok(root)


def test_failed_group_commit_fails_every_waiting_append(tmp_path: Path) -> None:
    """Threads share one fdatasync; when it fails none of them is acknowledged."""
    root = tmp_path / "s"
    io = FaultyFileIO("fdatasync", errno=errno.EIO, path_contains="segments", armed=False)
    s = LogStore.open(root, io=io)
    _fill(s, 0, 10)
    events = list(s.read_all())
    io.arm()
    outcomes: dict[str, str] = {}

    def writer(t: int) -> None:
        for k in range(20):
            cid = f"t{t}k{k}"
            try:
                s.append([eb.NewEvent(STREAMS[t], "Threaded", {"k": k})], commit_id=cid)
                outcomes[cid] = "acked"
            except eb.StoreFailed:
                outcomes[cid] = "failed"
                return

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "acked" not in outcomes.values()
    assert s.head_position() == len(events)
    s.close()
    s = eb.open_store(root)
    after = list(s.read_all())
    assert after[: len(events)] == events
    assert {e.commit_id for e in after[len(events) :]} <= set(outcomes)
    s.close()
    _ok(root)


# ---------------------------------------------------------------------- segment rollover


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "segment_bytes_max", 64 * 1024)
    monkeypatch.setattr(limits, "segment_allocate_bytes", 16 * 1024)


def _segment_files(root: Path) -> list[Path]:
    return sorted((root / "segments").iterdir())


def test_rollover_reads_across_segments_and_reopens(tmp_path: Path, small_segments: None) -> None:
    root = tmp_path / "s"
    s = eb.open_store(root)
    _fill(s, 0, 500, pad=200)
    big = s.append([eb.NewEvent("acct-1", "Huge", {"blob": "h" * 100_000})])  # > a segment
    _fill(s, 500, 50, pad=200)
    events = list(s.read_all())
    _assert_reads(s, events)
    files = _segment_files(root)
    assert len(files) >= 6
    # Every segment but the last ends at its last record (its reserved space was given back
    # at rollover), and stays under the limit unless one record alone is bigger.
    for n, p in enumerate(files[:-1], start=1):
        frames = [f for f in inspect_store(root, n) if f.length]
        assert p.stat().st_size == frames[-1].offset + frames[-1].length, p
        assert p.stat().st_size <= 64 * 1024 or len(frames) == 1, p
    assert s.read_event(big.first_position).data["blob"] == "h" * 100_000
    firsts = [
        next(f.position for f in inspect_store(root, n) if f.length)
        for n in range(2, len(files) + 1)
    ]
    for first in firsts:  # reads that start at, just before and just after a boundary
        for after in (first - 2, first - 1, first):
            assert list(s.read_all(after=after, limit=3)) == events[after : after + 3]
    s.close()
    _assert_store(root, events)
    _assert_store(root, events, readonly=True)
    _assert_retries(root, events, pad=200)
    (root / POSITIONS).unlink()
    for p in _sqlite_files(root):
        p.unlink()
    _assert_store(root, events)  # rebuilt from many segments
    _ok(root)


def test_torn_commit_at_the_start_of_a_new_segment(tmp_path: Path, small_segments: None) -> None:
    root = tmp_path / "s"
    s = eb.open_store(root)
    _fill(s, 0, 200, pad=300)
    files = _segment_files(root)
    before = list(s.read_all())
    s.close()
    index = {p.name: p.read_bytes() for p in (root / INDEX).iterdir()}
    s = eb.open_store(root)
    while len(_segment_files(root)) == len(files):
        s.append(_events(7), commit_id=None)
    s.close()
    last = _segment_files(root)[-1]
    raw = bytearray(last.read_bytes())
    frames = [f for f in inspect_store(root) if f.length]
    assert frames[0].offset == 32
    cut = frames[0].offset + frames[0].length // 2  # the new segment's first commit torn
    raw[cut:] = bytes(len(raw) - cut)
    last.write_bytes(bytes(raw))
    for name, data in index.items():  # the indexes from before: nothing later was synced
        (root / INDEX / name).write_bytes(data)
    s = eb.open_store(root)
    middle = list(s.read_all())
    assert middle[: len(before)] == before
    assert middle[-1].position < frames[0].position
    assert len(middle) == frames[0].position - 1
    r = s.append([eb.NewEvent("acct-2", "After", {})])
    assert r.first_position == frames[0].position
    s.close()
    assert [f.offset for f in inspect_store(root) if f.length] == [32]
    assert (root / "quarantine").exists()
    _assert_store(root, [*middle, *list(eb.open_store(root, readonly=True).read_all())[-1:]])
    _ok(root)


@pytest.mark.parametrize("size", [0, 10])
def test_new_segment_without_a_whole_header(
    tmp_path: Path, small_segments: None, size: int
) -> None:
    """A writer died creating the next segment: readers ignore it, the next writer
    quarantines it and creates it again."""
    root = tmp_path / "s"
    events = _build(root, 150, pad=300)
    n = len(_segment_files(root))
    (root / "segments" / f"{n + 1:010d}.seg").write_bytes(b"EBLOGSEG\x01\x00"[:size])
    _assert_store(root, events, readonly=True)
    s = eb.open_store(root)
    _assert_reads(s, events)
    more = _fill(s, 1000, 100, pad=300)
    all_events = list(s.read_all())
    s.close()
    assert len(_segment_files(root)) > n
    assert all_events[: len(events)] == events
    assert next(iter(more.values())).first_position == len(events) + 1
    _assert_store(root, all_events)
    _ok(root)


@pytest.mark.parametrize(
    "fault",
    [
        dict(fail_on="pwrite", path_contains="0000000002.seg"),  # its header
        dict(fail_on="pwrite", path_contains="0000000002.seg", after=1),  # allocated, no data
        dict(fail_on="allocate", path_contains="0000000002.seg"),
        dict(fail_on="fsync", path_contains="0000000002.seg"),  # creating the segment
        dict(fail_on="truncate", path_contains="0000000001.seg"),  # trimming the full one
        dict(fail_on="fdatasync", path_contains="0000000002.seg"),
    ],
    ids=lambda f: f"{f['fail_on']}-{f['path_contains'][-5]}-{f.get('after', 0)}",
)
def test_failure_during_rollover_then_reopen(
    tmp_path: Path, small_segments: None, fault: dict
) -> None:
    root = tmp_path / "s"
    io = FaultyFileIO(**fault, errno=errno.EIO)
    s = LogStore.open(root, io=io)
    acked: list[eb.AppendResult] = []
    with pytest.raises(eb.StoreFailed):
        for n in range(10_000):
            acked.append(s.append(_events(n, pad=300), commit_id=f"c{n}"))
    assert io.failures == 1 or fault["fail_on"] != "pwrite"
    events = list(s.read_all())
    assert len(events) == acked[-1].last_position
    s.close()
    s = eb.open_store(root)
    after = list(s.read_all())
    assert after[: len(events)] == events
    n = len(acked)
    present = after[len(events) :]
    assert [e.commit_id for e in present] in ([], [f"c{n}"] * len(_events(n)))
    more = _fill(s, n, 300, pad=300)  # the retry of c{n}, then on into new segments
    assert more[f"c{n}"].first_position == len(events) + 1
    final = list(s.read_all())
    assert [e.position for e in final] == list(range(1, len(final) + 1))
    s.close()
    _assert_store(root, final)
    (root / POSITIONS).unlink()
    _assert_store(root, final)  # a rebuild finds every acknowledged commit too
    _ok(root)


def test_damaged_end_of_a_full_segment_with_the_index_lost(
    tmp_path: Path, small_segments: None
) -> None:
    """Valid records in the next segment prove the damaged one was not a torn write (a writer
    rolls over only after the last commit was written whole): refuse, and cut nothing."""
    root = tmp_path / "s"
    events = _build(root, 150, pad=300)
    assert len(_segment_files(root)) >= 3
    last = [f for f in inspect_store(root, 1) if f.length][-1]
    seg1 = _segment_files(root)[0]
    _flip(seg1, last.offset + last.length - 2)
    (root / POSITIONS).unlink()
    before = [p.read_bytes() for p in _segment_files(root)]
    for readonly in (True, False):
        with pytest.raises(eb.StoreCorrupted) as caught:
            eb.open_store(root, readonly=readonly)
        assert (caught.value.path, caught.value.offset) == (str(seg1), last.offset)
    assert [p.read_bytes() for p in _segment_files(root)] == before
    assert not (root / "quarantine").exists()
    first_of_commit = next(
        e.position for e in events if e.commit_id == events[last.position - 1].commit_id
    )
    assert repair_store(root).head_position == first_of_commit - 1
    _assert_store(root, events[: first_of_commit - 1])
    _ok(root)


# ----------------------------------------------------------- failures inside a batch


def _append_until_failure(s: eb.EventStore, threads: int) -> dict[str, eb.AppendResult]:
    """Appenders on several threads, until the store fails; what was acknowledged."""
    acked: dict[str, eb.AppendResult] = {}
    lock = threading.Lock()

    def work(w: int) -> None:
        for n in range(w * 100_000, w * 100_000 + 2_000):
            try:
                result = s.append(_events(n, pad=300), commit_id=f"c{n}")
            except eb.StoreFailed:
                return
            with lock:
                acked[f"c{n}"] = result

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return acked


def _assert_acked_present(root: Path, acked: dict[str, eb.AppendResult]) -> None:
    s = eb.open_store(root)
    try:
        by_position = {e.position: e for e in s.read_all()}
        for commit_id, result in acked.items():
            for p in range(result.first_position, result.last_position + 1):
                assert by_position[p].commit_id == commit_id, (commit_id, p)
        assert sorted(by_position) == list(range(1, len(by_position) + 1))
    finally:
        s.close()
    _ok(root)


@pytest.mark.parametrize("after", [3, 17, 40])
def test_a_failed_batch_write_acknowledges_none_of_the_batch(
    tmp_path: Path, small_segments: None, after: int
) -> None:
    """A batch's frames go out in one write (and a rollover writes what is staged first):
    when that write fails, no commit of the batch may be acknowledged."""
    root = tmp_path / "s"
    io = FaultyFileIO("pwrite", after=after, errno=errno.ENOSPC, path_contains="segments")
    s = LogStore.open(root, io=io)
    acked = _append_until_failure(s, threads=6)
    assert io.failures >= 1
    with pytest.raises(eb.StoreFailed):
        s.append(_events(0), commit_id="after-failure")
    s.close()
    _assert_acked_present(root, acked)


def test_an_index_error_while_staging_turns_the_store_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite failing under an append (disk full for the index, say) fails the batch and the
    store, never half-answers it."""
    import sqlite3

    from eventbook.backends.log.stream_index import StreamIndex

    root = tmp_path / "s"
    s = eb.open_store(root)
    kept = _fill(s, 0, 20)
    real = StreamIndex.version

    def broken(self: StreamIndex, stream: str) -> int:
        if stream.startswith("new-"):
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, stream)

    monkeypatch.setattr(StreamIndex, "version", broken)
    with pytest.raises(eb.StoreFailed):
        s.append([eb.NewEvent("new-1", "Opened", {})])
    with pytest.raises(eb.StoreFailed):
        s.append(_events(99), commit_id="c99")
    assert s.head_position() == max(r.last_position for r in kept.values())
    s.close()
    monkeypatch.setattr(StreamIndex, "version", real)
    _assert_acked_present(root, kept)


@pytest.mark.parametrize("missing", ["last record of a commit", "whole last commit"])
def test_a_full_segment_cut_short_with_the_index_lost(
    tmp_path: Path, small_segments: None, missing: str
) -> None:
    """Segment 1 ends early (its last record, or its last whole commit, is gone) while the
    next segment holds valid records: records went missing, it is no torn write. Refuse."""
    root = tmp_path / "s"
    _build(root, 150, pad=300)
    frames = [f for f in inspect_store(root, 1) if f.length]
    if missing == "last record of a commit":
        tail = next(f for f in reversed(frames) if f.commit_count > 1 and f.commit_index > 0)
        cut = tail.offset
        frames_kept = [f for f in frames if f.offset < cut]
        if frames_kept[-1].commit_index == frames_kept[-1].commit_count - 1:
            pytest.fail("test setup: the cut must leave a commit short")
    else:
        first = frames[-1].position - frames[-1].commit_index  # the last commit's first record
        cut = next(f.offset for f in frames if f.position == first)
    seg1 = _segment_files(root)[0]
    with open(seg1, "r+b") as f:
        f.truncate(cut)
    (root / POSITIONS).unlink()
    before = [p.read_bytes() for p in _segment_files(root)]
    for readonly in (True, False):
        with pytest.raises(eb.StoreCorrupted):
            eb.open_store(root, readonly=readonly)
    assert [p.read_bytes() for p in _segment_files(root)] == before
    assert not (root / "quarantine").exists()


def test_a_store_of_another_format_version_is_refused_untouched(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _build(root, 3)
    meta = json.loads((root / "meta.json").read_text())
    meta["format_version"] = 99
    (root / "meta.json").write_text(json.dumps(meta))
    before = sorted((p.name, p.stat().st_size) for p in root.rglob("*") if p.is_file())
    for readonly in (True, False):
        with pytest.raises(eb.StoreUnsupported, match="format version 99") as caught:
            eb.open_store(root, readonly=readonly)
        assert caught.value.exit_code == 3
    assert sorted((p.name, p.stat().st_size) for p in root.rglob("*") if p.is_file()) == before
