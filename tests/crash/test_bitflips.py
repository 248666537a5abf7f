"""Bit flips in synced records: the store either refuses to open (StoreCorrupted naming the
segment file and an offset) or opens and refuses to read the damaged event. It never returns
an event whose content differs from what was written.

Every trial flips one bit of a copy of a cleanly closed store (so every record is synced and
covered by the position index), opens it, reads everything every way there is, and compares
each returned event with the original.
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

SEG_NAME = "0000000001.seg"
STREAMS = [f"acct-{i}" for i in range(5)]


@dataclass
class Original:
    root: Path
    events: list[eb.RecordedEvent]
    records: list[tuple[int, int, int]]  # (offset, length, position) per record
    commit_start: dict[int, int]  # position -> offset of its commit's first record


def _seed() -> int:
    seed = int(os.environ.get("EVENTBOOK_SEED") or random.randrange(2**32))
    print(f"bit flip seed={seed} (replay: EVENTBOOK_SEED={seed})")
    return seed


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    root = tmp_path_factory.mktemp("bitflips") / "store"
    rng = random.Random(7)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(limits, "segment_allocate_bytes", 32 * 1024)
        s = eb.open_store(root)
        for n in range(60):
            count = 1 if n % 3 else rng.randrange(2, 5)
            s.append(
                [
                    eb.NewEvent(
                        rng.choice(STREAMS),
                        "Flipped",
                        {"n": n, "i": i, "amount": rng.randrange(10**6), "note": "ok"},
                    )
                    for i in range(count)
                ],
                commit_id=f"c{n}",
            )
        events = list(s.read_all())
        s.close()
    records, commit_start, start = [], {}, 0
    for f in inspect_store(root):
        if f.length:
            records.append((f.offset, f.length, f.position))
            start = f.offset if f.commit_index == 0 else start
            commit_start[f.position] = start
    assert len(records) == len(events) > 100
    return Original(root, events, records, commit_start)


def _flipped_copy(o: Original, work: Path, offset: int, bit: int, name: str) -> Path:
    root = work / name
    shutil.copytree(o.root, root)
    with open(root / "segments" / SEG_NAME, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))
    return root


def _assert_names_damage(exc: eb.StoreCorrupted, lo: int, hi: int, where: str) -> None:
    assert exc.path.endswith(os.path.join("segments", SEG_NAME)), f"{where}: {exc}"
    assert exc.offset is not None and lo <= exc.offset <= hi, f"{where}: offset {exc.offset}"


def _read_everything(s: eb.EventStore, o: Original, damaged: int, where: str) -> None:
    """Every read path returns only unaltered events, and the damaged one is refused."""
    assert s.head_position() == len(o.events), where
    by_position = {e.position: e for e in o.events}
    got: list[eb.RecordedEvent] = []
    try:
        for e in s.read_all():
            got.append(e)
    except eb.StoreCorrupted:
        pass
    assert got == o.events[: len(got)], f"{where}: read_all returned an altered event"
    assert len(got) < damaged, f"{where}: read_all went past the damaged position {damaged}"
    for after in (damaged - 1, max(0, damaged - 3)):
        with pytest.raises(eb.StoreCorrupted):
            list(s.read_all(after=after))
    for e in s.read_all(after=damaged):
        assert e == by_position[e.position], f"{where}: read_all(after) altered"
    for position in range(1, len(o.events) + 1):
        if position == damaged:
            with pytest.raises(eb.StoreCorrupted):
                s.read_event(position)
        else:
            assert s.read_event(position) == by_position[position], where
    for stream in STREAMS:
        want = [e for e in o.events if e.stream == stream]
        try:
            assert list(s.read_stream(stream)) == want, f"{where}: read_stream altered"
            assert by_position[damaged].stream != stream, f"{where}: damaged event read back"
        except eb.StoreCorrupted:
            assert by_position[damaged].stream == stream, where


def _one_flip(
    o: Original, work: Path, at: int, bit: int, position: int, where: str, readonly: bool
) -> bool:
    """Flip one bit, open, read everything; True if the open refused."""
    root = _flipped_copy(o, work, at, bit, "trial")
    try:
        try:
            s = eb.open_store(root, readonly=readonly)
        except eb.StoreCorrupted as exc:
            _assert_names_damage(exc, o.commit_start[position], at, where)
            return True
        try:
            _read_everything(s, o, position, where)
        finally:
            s.close()
        report = verify_store(root)
        assert not report.ok and any(
            p.path and p.path.endswith(SEG_NAME) and p.offset is not None for p in report.problems
        ), f"{where}: verify missed it: {report.problems}"
        return False
    finally:
        shutil.rmtree(root)


def test_flips_inside_synced_records(original: Original, tmp_path: Path) -> None:
    o, seed = original, _seed()
    rng = random.Random(seed)
    refused = 0
    for trial in range(250):
        offset, length, position = rng.choice(o.records[:-1])
        at, bit = offset + rng.randrange(length), rng.randrange(8)
        where = f"seed={seed} trial={trial} flip byte {at} bit {bit} (position {position})"
        refused += _one_flip(o, tmp_path, at, bit, position, where, readonly=trial % 4 == 0)
    print(f"refused to open: {refused} of 250; the others refused the damaged event")


@pytest.mark.parametrize("which", ["first", "middle"])
def test_every_header_bit_of_a_record(original: Original, tmp_path: Path, which: str) -> None:
    """Magic, length (up to lengths past the end of the file), checksum, position, version
    and commit fields: each damaged field is caught by every read path."""
    o = original
    offset, _, position = o.records[0] if which == "first" else o.records[len(o.records) // 2]
    for at in range(offset, offset + 40):
        for bit in range(8):
            where = f"flip byte {at} bit {bit} in the header of position {position}"
            _one_flip(o, tmp_path, at, bit, position, where, readonly=bit % 2 == 1)


def test_flips_with_the_position_index_lost(original: Original, tmp_path: Path) -> None:
    """Without the index every record is checked by the rebuild: damage before valid records
    refuses to open, naming the damaged record, and the bytes stay where they are."""
    o, seed = original, _seed()
    rng = random.Random(seed)
    for trial in range(60):
        offset, length, position = rng.choice(o.records[:-10])
        at, bit = offset + rng.randrange(length), rng.randrange(8)
        where = f"seed={seed} trial={trial} flip byte {at} bit {bit} (position {position})"
        root = _flipped_copy(o, tmp_path, at, bit, f"t{trial}")
        (root / "index" / "positions.idx").unlink()
        before = (root / "segments" / SEG_NAME).read_bytes()
        with pytest.raises(eb.StoreCorrupted) as caught:
            eb.open_store(root).close()
        _assert_names_damage(caught.value, o.commit_start[position], at, where)
        assert (root / "segments" / SEG_NAME).read_bytes() == before, where
        assert not (root / "quarantine").exists(), where
        shutil.rmtree(root)


@pytest.mark.parametrize("readonly", [False, True])
def test_flips_in_the_last_record_refuse_to_open(
    original: Original, tmp_path: Path, readonly: bool
) -> None:
    """The last record is checked on open: a flip anywhere in it (header fields included)
    is damage to an acknowledged record, not a torn write, and nothing is cut."""
    o, seed = original, _seed()
    rng = random.Random(seed)
    offset, length, position = o.records[-1]
    spots = [(offset + i, rng.randrange(8)) for i in range(40)]  # every header byte
    spots += [(offset + rng.randrange(40, length), rng.randrange(8)) for _ in range(40)]
    for trial, (at, bit) in enumerate(spots):
        where = f"seed={seed} flip byte {at} bit {bit} of the last record (at {offset})"
        root = _flipped_copy(o, tmp_path, at, bit, f"t{trial}")
        before = (root / "segments" / SEG_NAME).read_bytes()
        with pytest.raises(eb.StoreCorrupted) as caught:
            eb.open_store(root, readonly=readonly).close()
        _assert_names_damage(caught.value, o.commit_start[position], at, where)
        assert (root / "segments" / SEG_NAME).read_bytes() == before, f"{where}: bytes changed"
        assert not (root / "quarantine").exists(), f"{where}: quarantined an acknowledged record"
        shutil.rmtree(root)


def test_flips_in_the_segment_header_refuse_to_open(original: Original, tmp_path: Path) -> None:
    o = original
    for at in range(32):
        for bit in range(8):
            where = f"flip byte {at} bit {bit} of the segment header"
            root = _flipped_copy(o, tmp_path, at, bit, f"h{at}-{bit}")
            for readonly in (False, True):
                with pytest.raises(eb.StoreCorrupted) as caught:
                    eb.open_store(root, readonly=readonly).close()
                _assert_names_damage(caught.value, 0, 0, where)
            shutil.rmtree(root)
