"""`eventbook projections …` against a real embedded log and its SQLite read models."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import eventbook as eb
from eventbook.cli.app import app
from eventbook.examples import bank

BANK = "eventbook.examples.bank:app"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EVENTBOOK_STORE", raising=False)
    monkeypatch.delenv("EVENTBOOK_APP", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "bank")
    with eb.open_store(path) as s:
        engine = eb.Engine(bank.app, s)
        for a in ("a1", "a2"):
            engine.run("OpenAccount", {"account_id": a})
        engine.run("Deposit", {"account_id": "a1", "amount": 50})
        engine.run("Transfer", {"from_account": "a1", "to_account": "a2", "amount": 20})
        engine.run("Withdraw", {"account_id": "a2", "amount": 500})  # rejected, recorded
    return path


def cli(store: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--store", store, "projections", *args, "--app", BANK])


def status(store: str) -> dict[str, dict]:
    result = cli(store, "status", "--json")
    assert result.exit_code == 0, result.output
    return {s["name"]: s for s in map(json.loads, result.stdout.splitlines())}


def balances(store: str) -> dict[str, int]:
    with sqlite3.connect(Path(store) / "read_models.sqlite") as db:
        return dict(db.execute("SELECT account_id, balance FROM balances").fetchall())


def test_status_before_and_after_a_run(store: str) -> None:
    before = status(store)
    assert before["balances"]["position"] == 0 and before["balances"]["lag"] == 6
    assert before["balances"]["status"] == "new"
    assert cli(store, "run").exit_code == 0
    after = status(store)
    assert set(after) == {"balances", "passbook"}
    for s in after.values():
        assert (s["position"], s["lag"], s["status"]) == (6, 0, "running")
    assert balances(store) == {"a1": 30, "a2": 20}


def test_rebuild_switches_generations_and_exits_0(store: str) -> None:
    assert cli(store, "run").exit_code == 0
    result = cli(store, "rebuild", "balances")
    assert result.exit_code == 0, result.output
    assert "rebuilt balances to position 6" in result.stdout
    assert balances(store) == {"a1": 30, "a2": 20}
    with sqlite3.connect(Path(store) / "read_models.sqlite") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "balances__balances__g2" in tables and "balances__balances__g1" not in tables


def test_reset_starts_again_from_zero(store: str) -> None:
    assert cli(store, "run").exit_code == 0
    assert cli(store, "reset", "passbook").exit_code == 0
    assert status(store)["passbook"]["position"] == 0
    assert cli(store, "run").exit_code == 0
    assert status(store)["passbook"]["position"] == 6


def test_list_names_the_projections(store: str) -> None:
    result = cli(store, "list", "--json")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["name"] for r in rows] == ["balances", "passbook"]
    assert "Deposited" in rows[0]["handles"]


@pytest.mark.parametrize("command", ["rebuild", "reset"])
def test_an_unknown_projection_exits_2_naming_the_known_ones(store: str, command: str) -> None:
    result = cli(store, command, "nope")
    assert result.exit_code == 2
    assert "balances, passbook" in result.output and "Traceback" not in result.output


def test_a_table_altered_by_hand_stops_the_projection_with_a_clear_message(store: str) -> None:
    assert cli(store, "run").exit_code == 0
    with sqlite3.connect(Path(store) / "read_models.sqlite") as db:
        db.execute("ALTER TABLE balances__balances__g1 ADD COLUMN note TEXT")
    with eb.open_store(store) as s:
        eb.Engine(bank.app, s).run("Deposit", {"account_id": "a1", "amount": 1})
    run = cli(store, "run")
    assert run.exit_code == 1
    assert "balances" in run.output and "altered" in run.output
    stopped = cli(store, "status")
    assert stopped.exit_code == 1
    assert status_rows(cli(store, "status", "--json"))["passbook"]["position"] == 7
    assert cli(store, "rebuild", "balances").exit_code == 0
    assert balances(store) == {"a1": 31, "a2": 20}


def status_rows(result: Result) -> dict[str, dict]:
    return {s["name"]: s for s in map(json.loads, result.stdout.splitlines())}


def test_projections_run_while_another_process_holds_the_writer_lock(store: str) -> None:
    with eb.open_store(store) as writer:  # the writer lock is held by this process
        eb.Engine(bank.app, writer).run("Deposit", {"account_id": "a2", "amount": 5})
        result = cli(store, "run")
        assert result.exit_code == 0, result.output
    assert balances(store) == {"a1": 30, "a2": 25}
