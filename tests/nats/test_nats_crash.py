"""kill -9 of NATS servers while a process appends from four threads: with one server
(`sync_interval: always`), the server is killed and restarted, round after round; in a
three-node cluster with three replicas, the stream's leader is killed while appends run and
restarted later. After it all, every acknowledged commit is there exactly as acknowledged,
every commit in the store is whole and appears once (the writer's retries after a lost
acknowledgement recorded nothing twice), positions and versions have no gap, and retrying any
commit with its commit id records nothing new."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats_writer

import eventbook as eb
from eventbook.testing.nats_server import NatsServer, nats_cluster, nats_server

WRITER = Path(__file__).with_name("nats_writer.py")


class Writer:
    """The writer process, its output file and the commits it reported acknowledged."""

    def __init__(self, url: str, stream: str, replicas: int, out: Path) -> None:
        self.out = out
        with out.open("wb") as stdout:
            self.proc = subprocess.Popen(
                [sys.executable, str(WRITER), url, stream, str(replicas), "0"],
                stdout=stdout,
                stderr=subprocess.PIPE,
                cwd=WRITER.parent,
            )
        deadline = time.monotonic() + 30
        while b"READY" not in out.read_bytes():
            assert self.proc.poll() is None, self.proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the writer did not open the store"
            time.sleep(0.01)

    def acknowledged(self) -> dict[str, tuple[int, int]]:
        acked = {}
        for line in self.out.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3:
                acked[parts[0]] = (int(parts[1]), int(parts[2]))
        return acked

    def wait_for_more(self, count: int, timeout: float = 40.0) -> None:
        """Until `count` more commits are acknowledged (the store got through a crash)."""
        target = len(self.acknowledged()) + count
        deadline = time.monotonic() + timeout
        while len(self.acknowledged()) < target:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the writer made no progress after the crash"
            time.sleep(0.02)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def check_store(url: str, stream: str, acknowledged: dict[str, tuple[int, int]]) -> None:
    with eb.open_store(url, stream=stream, readonly=True) as store:
        events = list(store.read_all())
        assert [e.position for e in events] == list(range(1, len(events) + 1)), "no gap"
        by_commit: dict[str, list[eb.RecordedEvent]] = {}
        versions: dict[str, list[int]] = {}
        for e in events:
            by_commit.setdefault(e.commit_id or "", []).append(e)
            versions.setdefault(e.stream, []).append(e.version)
        for cid, (first, last) in acknowledged.items():
            got = by_commit.get(cid, [])
            assert [e.position for e in got] == list(range(first, last + 1)), f"{cid} lost"
        for cid, got in by_commit.items():
            assert [e.data["i"] for e in got] == list(range(nats_writer.commit_size(cid))), (
                f"{cid} is not whole, or was recorded twice: {[e.position for e in got]}"
            )
        for name, got in versions.items():
            assert got == list(range(1, len(got) + 1)), f"{name}: versions {got}"
    with eb.open_store(url, stream=stream) as store:
        head = store.head_position()
        for cid in list(by_commit)[-40:]:
            again = store.append(nats_writer.events_of(cid), commit_id=cid)
            assert again.first_position == by_commit[cid][0].position
        assert store.head_position() == head, "a retry records nothing new"


def test_server_kill9_during_appends(tmp_path: Path) -> None:
    rng = random.Random()
    with nats_server() as server:
        writer = Writer(server.url, "CRASH", 1, tmp_path / "out")
        try:
            for _ in range(3):
                writer.wait_for_more(rng.randrange(20, 120))
                server.stop("kill")
                time.sleep(rng.uniform(0.0, 0.5))
                server.start()
            writer.wait_for_more(20)
        finally:
            writer.kill()
        acknowledged = writer.acknowledged()
        check_store(server.url, "CRASH", acknowledged)


def test_cluster_leader_kill9_during_appends(tmp_path: Path) -> None:
    rng = random.Random()
    with nats_cluster(3) as cluster:
        writer = Writer(cluster.urls, "CRASH", 3, tmp_path / "out")
        try:
            for _ in range(2):
                writer.wait_for_more(rng.randrange(20, 80))
                leader: NatsServer = cluster.stream_leader("CRASH")
                leader.stop("kill")
                writer.wait_for_more(20)  # the other two elect a leader and take appends
                leader.start()
                cluster.wait_until_ready()
            writer.wait_for_more(20)
        finally:
            writer.kill()
        check_store(cluster.urls, "CRASH", writer.acknowledged())
