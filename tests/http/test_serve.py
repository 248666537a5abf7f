"""`eventbook serve` as a real server (uvicorn, a free loopback port, a second process): the
names outside checks use — POST /commands/Deposit with the bank's fields, GET /state/account-a1
with `balance`, GET /health (200, JSON), 401 without a token unless --no-auth — and tokens
created, listed and revoked from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eventbook.testing.servers import free_port


@contextmanager
def serving(*args: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventbook.cli", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def call(method: str, url: str, body: object = None, token: str | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def eventbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventbook.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_serve_the_bank_without_auth(tmp_path: Path) -> None:
    store = str(tmp_path / "bank")
    app = "eventbook.examples.bank:app"
    with serving("--store", store, "serve", "--app", app, "--no-auth") as base:
        status, health = call("GET", f"{base}/health")
        assert status == 200 and health["status"] == "ok"
        assert call("POST", f"{base}/commands/OpenAccount", {"account_id": "a1"})[0] == 200
        status, outcome = call(
            "POST", f"{base}/commands/Deposit", {"account_id": "a1", "amount": 70}
        )
        assert status == 200 and outcome["accepted"]
        status, state = call("GET", f"{base}/state/account-a1")
        assert status == 200 and state["balance"] == 70


def test_serve_with_tokens(tmp_path: Path) -> None:
    store, tokens = str(tmp_path / "bank"), str(tmp_path / "tokens.json")
    created = eventbook(
        "tokens", "create", "--name", "teller", "--role", "write", "--tokens", tokens
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    listed = eventbook("tokens", "list", "--json", "--tokens", tokens)
    record = json.loads(listed.stdout)
    assert record["name"] == "teller" and token not in listed.stdout
    app = "eventbook.examples.bank:app"
    with serving("--store", store, "serve", "--app", app, "--tokens", tokens) as base:
        assert call("GET", f"{base}/health")[0] == 200
        status, problem = call("POST", f"{base}/commands/OpenAccount", {"account_id": "a1"})
        assert status == 401 and problem["status"] == 401
        assert call("GET", f"{base}/state/account-a1")[0] == 401
        assert call("POST", f"{base}/commands/OpenAccount", {"account_id": "a1"}, token)[0] == 200
        assert eventbook("tokens", "revoke", record["id"], "--tokens", tokens).returncode == 0
        assert call("GET", f"{base}/state/account-a1", token=token)[0] == 401


def test_serve_without_any_token_answers_401(tmp_path: Path) -> None:
    store, tokens = str(tmp_path / "bank"), str(tmp_path / "none.json")
    app = "eventbook.examples.bank:app"
    with serving("--store", store, "serve", "--app", app, "--tokens", tokens) as base:
        assert call("GET", f"{base}/health")[0] == 200
        assert call("GET", f"{base}/log")[0] == 401
