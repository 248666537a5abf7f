"""The command side from the shell: run, state, history, snapshot, replay, upcast.

All of these run against a real embedded log in a tmp directory.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import eventbook as eb
from eventbook.cli.app import app

BANK = "eventbook.examples.bank:app"


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


def bank(store: str, command: str, data: dict, *extra: str) -> Result:
    return cli(store, "run", "--app", BANK, command, json.dumps(data), *extra)


def head(store: str) -> int:
    with eb.open_store(store, readonly=True) as s:
        return s.head_position()


def state_json(store: str, stream: str, *extra: str) -> dict:
    result = cli(store, "state", stream, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_named_commands_and_balance(store: str) -> None:
    assert bank(store, "OpenAccount", {"account_id": "a1"}).exit_code == 0
    result = cli(
        store, "run", "--app", BANK, "Deposit", '{"account_id":"a1","amount":5}'
    )  # the exact form an outside check uses
    assert result.exit_code == 0, result.output
    assert "Deposited" in result.stdout
    assert state_json(store, "account-a1")["balance"] == 5


def test_overdraft_is_rejected_with_its_code_and_recorded(store: str) -> None:
    bank(store, "OpenAccount", {"account_id": "a1"})
    bank(store, "Deposit", {"account_id": "a1", "amount": 5})
    result = bank(store, "Withdraw", {"account_id": "a1", "amount": 6})
    assert result.exit_code == 1
    assert "insufficient_funds" in result.output
    with eb.open_store(store, readonly=True) as s:
        assert s.stream_version("account-a1") == 2
        [nop] = list(s.read_stream("$rejected-account-a1"))
        assert nop.type == "CommandRejected" and nop.data["code"] == "insufficient_funds"
    assert state_json(store, "account-a1")["balance"] == 5
    as_json = bank(store, "Withdraw", {"account_id": "a1", "amount": 6}, "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["rejection"]["code"] == "insufficient_funds"


def test_transfer_is_one_commit_over_two_streams(store: str) -> None:
    for a in ("a1", "a2"):
        bank(store, "OpenAccount", {"account_id": a})
    bank(store, "Deposit", {"account_id": "a1", "amount": 10})
    result = bank(
        store, "Transfer", {"from_account": "a1", "to_account": "a2", "amount": 4}, "--json"
    )
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert [e["stream"] for e in outcome["events"]] == ["account-a1", "account-a2"]
    assert len({e["commit_id"] for e in outcome["events"]}) == 1
    assert state_json(store, "account-a1")["balance"] == 6
    assert state_json(store, "account-a2")["balance"] == 4


def test_a_command_id_twice_writes_once(store: str) -> None:
    bank(store, "OpenAccount", {"account_id": "a1"})
    first = bank(store, "Deposit", {"account_id": "a1", "amount": 3}, "--id", "d-1", "--json")
    before = head(store)
    again = bank(store, "Deposit", {"account_id": "a1", "amount": 3}, "--id", "d-1", "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["duplicate"] is True
    assert json.loads(again.stdout)["events"] == json.loads(first.stdout)["events"]
    assert head(store) == before
    assert state_json(store, "account-a1")["balance"] == 3


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--app", BANK, "Depositt", "{}"], "known commands: Deposit, OpenAccount"),
        (["--app", BANK, "Deposit", '{"account_id":"a1","amount":"5"}'], "$.amount"),
        (["--app", BANK, "Deposit", '{"account_id":"a1"}'], "amount: integer"),
        (["--app", BANK, "Deposit", '{"account_id":"a1","amount":-5}'], "$.amount"),
        (["--app", BANK, "Deposit", "{not json"], "not valid JSON"),
        (["--app", "no_such_module:app", "Deposit", "{}"], "no_such_module"),
        (["--app", "eventbook.examples.bank:nope", "Deposit", "{}"], "no attribute 'nope'"),
        (["--app", "eventbook.examples.bank", "Deposit", "{}"], "module:attribute"),
        (["--app", "eventbook.examples.bank:accounts", "Deposit", "{}"], "not an eventbook"),
        (["Deposit", "{}"], "--app"),  # a new store remembers no application
    ],
)
def test_bad_input_exits_2_and_writes_nothing(store: str, args: list[str], says: str) -> None:
    result = cli(store, "run", *args)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not Path(store).exists(), "nothing is written, not even an empty store"


def test_bad_input_on_an_existing_store_writes_nothing(store: str) -> None:
    bank(store, "OpenAccount", {"account_id": "a1"})
    before = head(store)
    assert cli(store, "run", "Nope", "{}").exit_code == 2  # the remembered app is used
    assert cli(store, "run", "Deposit", '{"amount": 1}').exit_code == 2
    assert head(store) == before


def test_state_time_machine_options(store: str) -> None:
    bank(store, "OpenAccount", {"account_id": "a1"})
    for amount in (10, 20, 30):
        bank(store, "Deposit", {"account_id": "a1", "amount": amount})
    late = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    bank(store, "Deposit", {"account_id": "a1", "amount": 1000}, "--occurred-at", late)
    assert state_json(store, "account-a1", "--at-version", "2")["balance"] == 10
    assert state_json(store, "account-a1", "--at-position", "3")["balance"] == 30
    assert state_json(store, "account-a1")["balance"] == 1060
    cutoff = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    # As it really was a day ago: only the late deposit had occurred by then.
    assert state_json(store, "account-a1", "--occurred-by", cutoff)["balance"] == 1000
    # As we knew it a day ago: nothing was recorded yet.
    assert state_json(store, "account-a1", "--as-of", cutoff)["opened"] is False
    meta = state_json(store, "account-a1", "--at-version", "2")["_meta"]
    assert meta["version"] == 2 and meta["events_folded"] == 2
    both = cli(store, "state", "account-a1", "--at-version", "1", "--at-position", "1")
    assert both.exit_code == 2 and "at most one" in both.output
    naive = cli(store, "state", "account-a1", "--as-of", "2024-01-01T00:00:00")
    assert naive.exit_code == 2 and "time zone" in naive.output
    other = cli(store, "state", "customer-1")
    assert other.exit_code == 2 and "account-" in other.output


def test_history_shows_every_command_with_the_state_after(store: str) -> None:
    bank(store, "OpenAccount", {"account_id": "a1"})
    bank(store, "Deposit", {"account_id": "a1", "amount": 7})
    bank(store, "Withdraw", {"account_id": "a1", "amount": 9})
    result = cli(store, "history", "account-a1", "--json")
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["command"]["type"] for e in entries] == ["OpenAccount", "Deposit", "Withdraw"]
    assert [e["state"]["balance"] for e in entries] == [0, 7, 7]
    assert entries[2]["rejection"]["code"] == "insufficient_funds"
    table = cli(store, "history", "account-a1")
    assert table.exit_code == 0
    assert "balance 7" in table.stdout and "rejected: insufficient_funds" in table.stdout


def test_snapshots_day_end_list_and_replay_verify(store: str) -> None:
    bank(store, "OpenAccount", {"account_id": "a1"})
    bank(store, "Deposit", {"account_id": "a1", "amount": 7})
    taken = cli(store, "snapshot", "--stream", "account-a1", "--json")
    assert taken.exit_code == 0, taken.output
    assert json.loads(taken.stdout) == {"stream": "account-a1", "version": 2, "position": 2}
    today = datetime.now(UTC).date().isoformat()
    cut = cli(store, "snapshot", "--day-end", today, "--json")
    assert cut.exit_code == 0, cut.output
    assert json.loads(cut.stdout)["position"] == 2
    bank(store, "Deposit", {"account_id": "a1", "amount": 1})
    assert state_json(store, "account-a1")["_meta"]["snapshot"]["version"] == 2
    listed = [
        json.loads(x) for x in cli(store, "snapshot", "--list", "--json").stdout.split("\n") if x
    ]
    assert {s["key"] for s in listed} == {"account-a1", "$day-end"}
    verified = cli(store, "replay", "--verify", "--json")
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assert report["ok"] and report["snapshots_checked"] == 2
    assert report["state_hash"] == report["replica_hash"]
    bad_day = cli(store, "snapshot", "--day-end", "yesterday")
    assert bad_day.exit_code == 2 and "YYYY-MM-DD" in bad_day.output


def test_replay_verify_catches_a_tampered_snapshot(store: str) -> None:
    bank(store, "OpenAccount", {"account_id": "a1"})
    bank(store, "Deposit", {"account_id": "a1", "amount": 7})
    assert cli(store, "snapshot").exit_code == 0  # every stream of the application
    with eb.open_store(store) as s:
        import msgspec

        [snap] = list(s.snapshots().all("account-a1"))
        forged = msgspec.structs.replace(snap, state_hash="0" * 64)
        s.snapshots().save(forged)
    result = cli(store, "replay", "--verify")
    assert result.exit_code == 1
    assert "snapshot of account-a1 at version 2 differs" in " ".join(result.output.split())


def test_upcast_check_reports_what_fails(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank(store, "OpenAccount", {"account_id": "a1"})
    bank(store, "Deposit", {"account_id": "a1", "amount": 7})
    ok = cli(store, "upcast", "--check", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"]
    (tmp_path / "bank_v2.py").write_text(
        textwrap.dedent(
            """
            from typing import ClassVar
            import dataclasses
            import eventbook as eb
            from eventbook.examples import bank

            class Deposited(eb.Event, tag="Deposited"):
                schema_version: ClassVar[int] = 2
                amount: int
                currency: str

            events = [Deposited if e is bank.Deposited else e for e in bank.app.events]
            broken = dataclasses.replace(bank.app, events=events, upcasters={})
            fixed = dataclasses.replace(bank.app, events=events, upcasters={})

            @fixed.upcaster("Deposited", 1)
            def _(data):
                return {**data, "currency": "EUR"}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = cli(store, "upcast", "--check", "--app", "bank_v2:broken", "--json")
    assert broken.exit_code == 1
    [failure] = json.loads(broken.stdout)["failures"]
    assert failure["type"] == "Deposited" and failure["count"] == 1
    assert "no upcaster" in failure["error"]
    fixed = cli(store, "upcast", "--check", "--app", "bank_v2:fixed")
    assert fixed.exit_code == 0, fixed.output
    assert cli(store, "upcast").exit_code == 2
