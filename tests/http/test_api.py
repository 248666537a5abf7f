"""The HTTP API in process (Starlette's TestClient) on the bank: commands with idempotency keys
and rejections as problem+json, streams with ETag / If-Match, the log, Server-Sent Events
resumed with Last-Event-ID, the time machine, health, metrics, the OpenAPI document, tokens
and roles, and bad input answered with the right status and nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import eventbook as eb
from eventbook import limits
from eventbook.examples import bank
from eventbook.http import TokenStore, create_app


@pytest.fixture
def store() -> Iterator[eb.EventStore]:
    with eb.open_store("memory://") as opened:
        yield opened


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.json")


@pytest.fixture
def client(store: eb.EventStore, tokens: TokenStore) -> Iterator[TestClient]:
    with TestClient(create_app(bank.app, store, tokens=tokens)) as c:
        yield c


def bearer(tokens: TokenStore, role: str, name: str = "teller-1") -> dict[str, str]:
    _record, token = tokens.create(name, role)
    return {"Authorization": f"Bearer {token}"}


def test_commands_streams_and_state(client: TestClient, tokens: TokenStore, store) -> None:
    w = bearer(tokens, "write")
    r = client.post("/commands/OpenAccount", json={"account_id": "a1"}, headers=w)
    assert r.status_code == 200 and r.json()["accepted"] is True
    key = {**w, "Idempotency-Key": "dep-1"}
    r = client.post("/commands/Deposit", json={"account_id": "a1", "amount": 100}, headers=key)
    first = r.json()
    assert r.status_code == 200 and first["events"][0]["type"] == "Deposited"
    again = client.post("/commands/Deposit", json={"account_id": "a1", "amount": 100}, headers=key)
    assert again.json()["duplicate"] is True and again.json()["position"] == first["position"]
    state = client.get("/state/account-a1", headers=w)
    assert state.status_code == 200 and state.json()["balance"] == 100
    assert state.json()["_meta"]["version"] == 2
    past = client.get("/state/account-a1?at-version=1", headers=w)
    assert past.json()["balance"] == 0
    page = client.get("/streams/account-a1", headers=w)
    assert page.headers["etag"] == '"2"' and [e["type"] for e in page.json()["events"]] == [
        "AccountOpened",
        "Deposited",
    ]
    # every write records the token's name as the actor
    assert all(e.metadata.get("actor") == "teller-1" for e in store.read_all())


def test_a_rejection_is_a_problem_with_its_code(client: TestClient, tokens: TokenStore) -> None:
    w = bearer(tokens, "write")
    client.post("/commands/OpenAccount", json={"account_id": "a1"}, headers=w)
    r = client.post("/commands/Withdraw", json={"account_id": "a1", "amount": 5}, headers=w)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "insufficient_funds" and body["type"].endswith("/insufficient_funds")


def test_appends_with_if_match(client: TestClient, tokens: TokenStore, store) -> None:
    w = bearer(tokens, "write")
    events = {"events": [{"type": "Noted", "data": {"n": 1}}]}
    r = client.post("/streams/notes-1", json=events, headers={**w, "If-None-Match": "*"})
    assert r.status_code == 201 and r.headers["etag"] == '"1"'
    stale = client.post("/streams/notes-1", json=events, headers={**w, "If-Match": '"0"'})
    assert stale.status_code == 412 and stale.json()["actual_version"] == 1
    ok = client.post("/streams/notes-1", json=events, headers={**w, "If-Match": '"1"'})
    assert ok.status_code == 201 and ok.json()["version"] == 2
    assert store.stream_version("notes-1") == 2


def test_the_log_and_server_sent_events_resume(client: TestClient, tokens: TokenStore) -> None:
    w = bearer(tokens, "write")
    for i in range(5):
        client.post("/commands/OpenAccount", json={"account_id": f"a{i}"}, headers=w)
    log = client.get("/log?after=2&limit=2", headers=w).json()
    assert [e["position"] for e in log["events"]] == [3, 4] and log["head"] == 5
    got = _sse(client, "/subscribe?after=0", w, 3)
    assert [e["id"] for e in got] == ["1", "2", "3"]
    resumed = _sse(client, "/subscribe?after=0", {**w, "Last-Event-ID": "3"}, 2)
    assert [e["id"] for e in resumed] == ["4", "5"], "no gap, no duplicate"
    assert json.loads(resumed[0]["data"])["stream"] == "account-a3"


def _sse(client: TestClient, url: str, headers: dict[str, str], count: int) -> list[dict]:
    events: list[dict] = []
    with client.stream("GET", url, headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        current: dict[str, str] = {}
        for line in r.iter_lines():
            if not line:
                if current:
                    events.append(current)
                    current = {}
                if len(events) == count:
                    break
                continue
            field, _, value = line.partition(": ")
            current[field] = value
    return events


def test_tokens_and_roles(client: TestClient, tokens: TokenStore) -> None:
    assert client.get("/health").status_code == 200, "health needs no token"
    assert client.get("/log").status_code == 401
    assert client.get("/log", headers={"Authorization": "Bearer nope"}).status_code == 401
    reader = bearer(tokens, "read", "auditor")
    assert client.get("/log", headers=reader).status_code == 200
    denied = client.post("/commands/OpenAccount", json={"account_id": "a1"}, headers=reader)
    assert denied.status_code == 403 and "read" in denied.json()["detail"]
    record = tokens.list()[-1]
    tokens.revoke(record.id)
    assert client.get("/log", headers=reader).status_code == 401
    assert "sha256" not in record.public() and len(record.sha256) == 64


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/commands/Nope", {}, {}, 404),
        ("/commands/Deposit", "{not json", {}, 400),
        ("/commands/Deposit", {"account_id": "a1", "amount": "ten"}, {}, 422),
        ("/commands/Deposit", {"account_id": "a1"}, {}, 422),
        ("/commands/Deposit", [1, 2], {}, 422),
        ("/commands/Deposit", {"account_id": "a1", "amount": 1}, {"Idempotency-Key": "a b"}, 400),
        ("/streams/s-1", {"events": []}, {}, 422),
        ("/streams/s-1", {"events": [{"data": {}}]}, {}, 422),
        ("/streams/s-1", {"events": [{"type": "T"}]}, {"If-Match": "three"}, 400),
        ("/streams/$bad", {"events": [{"type": "T"}]}, {}, 400),
    ],
)
def test_bad_input_gets_its_status_and_writes_nothing(
    client: TestClient, tokens: TokenStore, store, path: str, body, headers, status: int
) -> None:
    w = {**bearer(tokens, "write"), **headers}
    if isinstance(body, str):
        r = client.post(path, content=body, headers={**w, "Content-Type": "application/json"})
    else:
        r = client.post(path, json=body, headers=w)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status and r.json()["title"]
    assert store.head_position() == 0


def test_an_oversize_body_is_413(client: TestClient, tokens: TokenStore, store) -> None:
    big = {"account_id": "a1", "amount": 1, "pad": "x" * (limits.http_body_bytes_max + 1)}
    r = client.post("/commands/Deposit", json=big, headers=bearer(tokens, "write"))
    assert r.status_code == 413 and store.head_position() == 0


def test_time_machine_parameters_are_checked(client: TestClient, tokens: TokenStore) -> None:
    w = bearer(tokens, "write")
    assert client.get("/state/account-a1?at-version=x", headers=w).status_code == 400
    assert client.get("/state/account-a1?as-of=2026-01-01", headers=w).status_code == 400
    both = client.get("/state/account-a1?at-version=1&at-position=1", headers=w)
    assert both.status_code == 400


def test_metrics_and_openapi(client: TestClient, tokens: TokenStore) -> None:
    w = bearer(tokens, "write")
    client.post("/commands/OpenAccount", json={"account_id": "a1"}, headers=w)
    text = client.get("/metrics", headers=w).text
    assert "eventbook_head_position 1" in text
    assert 'eventbook_commands_total{outcome="accepted"} 1' in text
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    deposit = doc["paths"]["/commands/Deposit"]["post"]["requestBody"]["content"]
    schema = deposit["application/json"]["schema"]
    assert schema["$ref"].endswith("/Deposit")
    assert set(doc["components"]["schemas"]["Deposit"]["required"]) == {"account_id", "amount"}


def test_without_auth_anyone_may_call(store) -> None:
    with TestClient(create_app(bank.app, store, tokens=None)) as c:
        r = c.post("/commands/OpenAccount", json={"account_id": "a1"})
        assert r.status_code == 200
    assert next(iter(store.read_all())).metadata["actor"] == "anonymous"


def test_subscribers_behind_and_at_the_shared_tail_get_every_event_once(
    client: TestClient, tokens: TokenStore, store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "http_sse_buffer_events_max", 5)
    w = bearer(tokens, "write")
    for i in range(12):
        client.post("/commands/OpenAccount", json={"account_id": f"a{i}"}, headers=w)
    first = _sse(client, "/subscribe?after=0", w, 12)  # the tail starts at the head here
    assert [int(e["id"]) for e in first] == list(range(1, 13))
    for i in range(12, 30):  # the tail keeps only the newest 5 of these
        client.post("/commands/OpenAccount", json={"account_id": f"a{i}"}, headers=w)
    behind = _sse(client, "/subscribe?after=3", w, 27)  # from the store, then the buffer
    assert [int(e["id"]) for e in behind] == list(range(4, 31))
    at_tail = _sse(client, "/subscribe?after=27", w, 3)
    assert [int(e["id"]) for e in at_tail] == [28, 29, 30]


def test_reports_of_the_bitemporal_books(tmp_path: Path) -> None:
    """Seed 000's first story (eventbook demo retail) read back through the API."""
    import subprocess
    import sys

    from eventbook.examples import retail

    path = tmp_path / "shops"
    done = subprocess.run(
        [sys.executable, "-m", "eventbook.cli", "--store", str(path), "demo", "retail", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with eb.open_store(path) as store, TestClient(create_app(retail.app, store, tokens=None)) as c:
        assert c.get("/reports").json()["books"][0]["measure"] == "sales"
        feed = c.get("/reports/sales?view=feed").json()["rows"]
        corrections = [r for r in feed if r["type"] == "CorrectionIssued"]
        assert [(r["period"], r["old"], r["new"]) for r in corrections] == [
            ("2026-11-24", 2200, 4200)
        ]
        at_midnight = "2026-11-25T00:00:00+08:00"
        known = c.get(f"/reports/sales?view=report&as-known-at={at_midnight}").json()["rows"]
        assert {r["period"]: r["value"] for r in known}["2026-11-24"] == 2200
        now = c.get("/reports/sales?view=report").json()["rows"]
        assert {r["period"]: r["value"] for r in now}["2026-11-24"] == 4200
        assert c.get("/reports/nothing").status_code == 404
        assert c.get("/reports/sales?view=pie").status_code == 400
