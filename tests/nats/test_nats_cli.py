"""The command line on a nats:// store: the bank demo (the issue's "done when"), reading it
back, and the errors a user can meet (an unreachable server, a command that reads an embedded
log's files)."""

from __future__ import annotations

import json
import subprocess
import sys

from eventbook.testing.servers import free_port


def eventbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventbook.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_demo_runs_on_nats_and_reads_back(nats_url: str) -> None:
    url = f"{nats_url}?stream=CLI_DEMO"
    done = eventbook("--store", url, "demo")
    assert done.returncode == 0, done.stderr
    assert "passbook of account-ada" in done.stdout
    streams = eventbook("--store", url, "streams", "--json")
    assert streams.returncode == 0, streams.stderr
    versions = {row["stream"]: row["version"] for row in map(json.loads, streams.stdout.split())}
    assert versions["account-ada"] == 5 and versions["account-bob"] == 2
    state = eventbook(
        "--store", url, "state", "account-ada", "--json", "--app", "eventbook.examples.bank:app"
    )
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["balance"] == 45


def test_an_unreachable_server_exits_3_naming_it() -> None:
    port = free_port()
    done = eventbook("--store", f"nats://127.0.0.1:{port}", "streams")
    assert done.returncode == 3
    assert f"NATS at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_verify_refuses_a_nats_store(nats_url: str) -> None:
    done = eventbook("--store", nats_url, "verify")
    assert done.returncode == 2
    assert "embedded log" in done.stderr and "Traceback" not in done.stderr
