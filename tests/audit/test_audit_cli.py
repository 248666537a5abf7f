"""Audit from the shell: run --actor/--reason, audit, verify --replay/--redecide, what-if."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner, Result

import eventbook as eb
from eventbook.cli.app import app

BANK = "eventbook.examples.bank:app"
WRONG = "eventbook.examples.bank_interest:app"
FIXED = "eventbook.examples.bank_interest:fixed_app"
CLOCKY = "audit_support:clocky"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EVENTBOOK_STORE", raising=False)
    monkeypatch.delenv("EVENTBOOK_APP", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "bank")


def cli(store: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--store", store, *args])


def run(store: str, application: str, command: str, data: dict, *extra: str) -> Result:
    return cli(store, "run", "--app", application, command, json.dumps(data), *extra)


def lines(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_run_records_actor_and_reason_and_audit_finds_them(store: str) -> None:
    assert run(store, BANK, "OpenAccount", {"account_id": "a1"}, "--actor", "ann").exit_code == 0
    done = run(
        store, BANK, "Deposit", {"account_id": "a1", "amount": 5}, "--actor", "ann",
        "--reason", "salary", "--correlation", "pay-1", "--causation", "hr-7",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    refused = run(store, BANK, "Withdraw", {"account_id": "a1", "amount": 9}, "--actor", "bob")
    assert refused.exit_code == 1
    found = lines(cli(store, "audit", "--actor", "ann", "--json"))
    assert [f["outcome"] for f in found] == ["accepted", "accepted"]
    deposit = found[1]
    assert (deposit["actor"], deposit["reason"]) == ("ann", "salary")
    assert deposit["command"]["type"] == "Deposit" and deposit["positions"] == [2]
    assert (deposit["correlation_id"], deposit["causation_id"]) == ("pay-1", "hr-7")
    [bob] = lines(cli(store, "audit", "--actor", "bob", "--json"))
    assert bob["outcome"] == "rejected" and bob["rejection"]["code"] == "insufficient_funds"
    assert len(lines(cli(store, "audit", "--stream", "account-a1", "--json"))) == 3
    assert len(lines(cli(store, "audit", "--correlation", "pay-1", "--json"))) == 1
    table = cli(store, "audit")
    assert table.exit_code == 0 and "salary" in table.stdout and "bob" in table.stdout


def test_a_required_actor_missing_exits_2_and_creates_nothing(store: str) -> None:
    result = run(store, WRONG, "OpenAccount", {"account_id": "a1"})
    assert result.exit_code == 2
    assert "requires actor" in result.output and "--actor NAME" in result.output
    assert not Path(store).exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["audit", "--from", "2026-01-01T00:00:00"], "no time zone"),
        (["audit", "--to", "yesterday"], "not an ISO 8601 time"),
        (["audit", "--correlation", "a b"], "without spaces"),
        (["what-if"], "--app"),
        (["what-if", "--app", "nope"], "module:attribute"),
        (["what-if", "--app", FIXED, "--actor", "ann"], "go with --book"),
        (["what-if", "--app", FIXED, "--from", "-1"], "greater than or equal to 0"),
        (["verify", "--redecide", "--app", "eventbook.examples.bank:nothing"], "no attribute"),
    ],
)
def test_bad_input_exits_2(store: str, args: list[str], fragment: str) -> None:
    result = cli(store, *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_verify_exits_0_then_3_on_a_decider_that_reads_the_clock(store: str) -> None:
    run(store, BANK, "OpenAccount", {"account_id": "a1"})
    run(store, BANK, "Deposit", {"account_id": "a1", "amount": 5}, "--id", "d1")
    for flags in (["--replay"], ["--redecide"], ["--replay", "--redecide"]):
        assert cli(store, "verify", *flags, "--app", BANK).exit_code == 0
    result = cli(store, "verify", "--redecide", "--app", BANK, "--json")
    assert lines(result)[-1] == {
        "check": "redecide",
        "position": 2,
        "commands": 2,
        "matched": 2,
        "rejections": 0,
        "unchecked": 0,
        "mismatch_count": 0,
        "mismatches": [],
        "ok": True,
    }
    run(store, CLOCKY, "Deposit", {"account_id": "a1", "amount": 6}, "--id", "tick")
    bad = cli(store, "verify", "--redecide", "--app", CLOCKY)
    assert bad.exit_code == 3
    text = " ".join(bad.stdout.split())
    assert "position 3, command Deposit (id tick)" in text and "DepositStamped" in text
    assert cli(store, "verify").exit_code == 0  # the bytes are sound: only the decision is not


def test_verify_replay_exits_3_on_a_tampered_snapshot(store: str) -> None:
    run(store, BANK, "OpenAccount", {"account_id": "a1"})
    run(store, BANK, "Deposit", {"account_id": "a1", "amount": 7})
    assert cli(store, "snapshot").exit_code == 0
    with eb.open_store(store) as s:
        [snap] = list(s.snapshots().all("account-a1"))
        s.snapshots().save(msgspec.structs.replace(snap, state_hash="0" * 64))
    result = cli(store, "verify", "--replay")  # the app this store ran last
    assert result.exit_code == 3
    assert "snapshot of account-a1 at version 2 differs" in " ".join(result.output.split())


def test_what_if_json_and_book(store: str) -> None:
    for command, data in [
        ("OpenAccount", {"account_id": "a1"}),
        ("Deposit", {"account_id": "a1", "amount": 100_000}),
        ("PayInterest", {"account_id": "a1"}),
    ]:
        assert run(store, WRONG, command, data, "--actor", "batch").exit_code == 0
    [diff] = lines(cli(store, "what-if", "--app", FIXED, "--json"))
    assert diff["stream"] == "account-a1"
    assert (diff["before"]["balance"], diff["after"]["balance"]) == (100_150, 101_500)
    refused = cli(store, "what-if", "--app", FIXED, "--book")
    assert refused.exit_code == 2 and "requires actor" in refused.output
    booked = cli(
        store, "what-if", "--app", FIXED, "--book", "--actor", "ann", "--reason", "fixed", "--json"
    )
    assert booked.exit_code == 0, booked.output
    assert lines(booked)[0]["booked"]["position"] == 4
    assert lines(cli(store, "what-if", "--app", FIXED, "--json")) == []
    state = json.loads(cli(store, "state", "account-a1", "--app", WRONG, "--json").stdout)
    assert state["balance"] == 101_500
    [correction] = lines(cli(store, "audit", "--actor", "ann", "--json"))
    assert correction["outcome"] == "correction" and correction["reason"] == "fixed"
    assert correction["corrects"] == [lines(cli(store, "audit", "--json"))[2]["commit_id"]]
    human = cli(store, "what-if", "--app", WRONG)  # the wrong rule would undo the correction
    assert human.exit_code == 0 and "1 stream(s) differ" in human.stdout
    assert "balance 101500 -> 100150" in human.stdout
