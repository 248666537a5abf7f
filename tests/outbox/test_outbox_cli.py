"""`eventbook relay` through the real command line, against a real NATS server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from outbox_support import stream_messages

import eventbook as eb
from eventbook.cli.relaying import default_checkpoint
from eventbook.testing.nats_server import nats_server
from eventbook.testing.servers import free_port

COMMAND = [sys.executable, "-m", "eventbook.cli"]


def eventbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_relay_once_publishes_up_to_the_head_and_resumes_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "shop"
    with eb.open_store(folder, sync="none") as store:
        for i in range(25):
            store.append([eb.NewEvent(f"order-{i % 4}", "Placed", {"i": i})])
    checkpoint = tmp_path / "shop.relay-SHOP.checkpoint"
    assert default_checkpoint(str(folder), "SHOP") == checkpoint
    with nats_server() as server:
        args = ["--store", str(folder), "relay", "--to", server.url, "--stream", "SHOP"]
        done = eventbook(*args, "--subject-prefix", "shop.events", "--once")
        assert done.returncode == 0, done.stderr
        assert "published 25 events" in done.stderr
        assert json.loads(checkpoint.read_text())["position"] == 25

        with eb.open_store(folder, sync="none") as store:
            store.append([eb.NewEvent("payment-1", "Paid", {})])
            events = list(store.read_all())
        again = eventbook(*args, "--subject-prefix", "shop.events", "--once")
        assert again.returncode == 0, again.stderr
        assert "published 1 events" in again.stderr
        msgs = stream_messages(server.url, "SHOP")
        own = tmp_path / "own.checkpoint"
        other = eventbook(*args, "--subject-prefix", "other", "--checkpoint", str(own), "--once")
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [e.id for e in events]
    assert msgs[0].subject == "shop.events.order" and msgs[-1].subject == "shop.events.payment"
    assert other.returncode == 2 and "holds the subjects" in other.stderr  # InvalidInput
    assert not own.exists()


def test_relay_to_an_unreachable_server_exits_3(tmp_path: Path) -> None:
    with eb.open_store(tmp_path / "log", sync="none") as store:
        store.append([eb.NewEvent("order-1", "Placed", {})])
    done = eventbook(
        "--store", str(tmp_path / "log"), "relay", "--to", f"nats://127.0.0.1:{free_port()}"
    )
    assert done.returncode == 3, done.stderr
    assert "cannot reach NATS" in done.stderr


def test_relay_follows_until_ctrl_c_and_saves_its_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    with eb.open_store(folder, sync="none") as store:
        for i in range(30):
            store.append([eb.NewEvent(f"order-{i % 4}", "Placed", {"i": i})])
    checkpoint = tmp_path / "cp"
    cp = str(checkpoint)
    with nats_server() as server:
        follower = subprocess.Popen(
            [*COMMAND, "--store", str(folder), "relay", "--to", server.url, "--checkpoint", cp],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not checkpoint.exists() or json.loads(checkpoint.read_text())["position"] < 30:
                assert follower.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            follower.send_signal(signal.SIGINT)
            stderr = follower.communicate(timeout=30)[1]
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
        assert len(stream_messages(server.url, "OUTBOX")) == 30
    assert follower.returncode == 0, stderr
    assert "Ctrl-C to stop" in stderr and "published 30 events" in stderr
