"""kill -9 of a process appending to PostgreSQL from four threads, at random moments, round
after round on one store: every acknowledged commit is there exactly as acknowledged, every
commit in the store is whole, versions stay gap-free, and retrying any commit (acknowledged or
cut off by the kill) with its commit id records nothing new."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pg_writer
import pytest

import eventbook as eb

WRITER = Path(__file__).with_name("pg_writer.py")
ROUNDS = 12


@pytest.fixture
def schema(drop_schema: Callable[[str], None]) -> Iterator[str]:
    name = f"kill_{random.randrange(16**8):08x}"
    yield name
    drop_schema(name)


def test_kill9_never_loses_an_acknowledged_append(pg_url: str, schema: str, tmp_path: Path) -> None:
    rng = random.Random()
    acknowledged: dict[str, tuple[int, int]] = {}
    for round_no in range(ROUNDS):
        out = tmp_path / f"out-{round_no}"
        with out.open("wb") as stdout:
            proc = subprocess.Popen(
                [sys.executable, str(WRITER), pg_url, schema, str(round_no)],
                stdout=stdout,
                stderr=subprocess.PIPE,
                cwd=WRITER.parent,
            )
        deadline = time.monotonic() + 30
        while b"READY" not in out.read_bytes():
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the writer did not open the store"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        for line in out.read_text().splitlines()[1:]:
            cid, first, last = line.split()
            acknowledged[cid] = (int(first), int(last))

    assert len(acknowledged) > ROUNDS * 4, "the writers got appends acknowledged"
    with eb.open_store(pg_url, schema=schema) as store:
        events = list(store.read_all())
        by_commit: dict[str, list[eb.RecordedEvent]] = {}
        versions: dict[str, list[int]] = {}
        for e in events:
            by_commit.setdefault(e.commit_id or "", []).append(e)
            versions.setdefault(e.stream, []).append(e.version)
        for cid, (first, last) in acknowledged.items():
            got = by_commit.get(cid, [])
            assert [e.position for e in got] == list(range(first, last + 1)), f"{cid} lost"
        for cid, got in by_commit.items():
            assert len(got) == pg_writer.commit_size(cid), f"{cid} is not whole"
            assert [e.data["i"] for e in got] == list(range(len(got)))
        for stream, got in versions.items():
            assert got == list(range(1, len(got) + 1)), f"{stream}: versions {got}"
        head = store.head_position()
        for cid in list(by_commit)[:50]:
            again = store.append(pg_writer.events_of(cid), commit_id=cid)
            assert again.first_position == by_commit[cid][0].position
        assert store.head_position() == head, "a retry records nothing new"
