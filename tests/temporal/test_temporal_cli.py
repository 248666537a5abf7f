"""`eventbook demo retail` and `eventbook report` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from eventbook.cli.app import app as cli


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout


def test_demo_retail_json_ends_with_the_seed_figures(tmp_path: Path) -> None:
    store = str(tmp_path / "shops")
    code, out = _run("--store", store, "demo", "retail", "--json")
    assert code == 0, out
    lines = [json.loads(line) for line in out.strip().splitlines()]
    last = lines[-1]
    assert last["day"] == "2026-11-24"
    assert last["as_happened"] == 4200
    assert last["as_known_at_end_of_day"] == 2200
    (correction,) = [c for c in last["corrections"] if c["day"] == "2026-11-24"]
    assert (correction["old"], correction["new"]) == (2200, 4200)
    assert [s["live"]["received"] for s in lines[:-1]] == [0, 1000, 2200, 2200, 0, 2000, 0]
    again = _run("--store", store, "demo", "retail", "--json")  # the same story, nothing new
    assert again == (code, out)


def test_demo_retail_prints_the_three_views(tmp_path: Path) -> None:
    code, out = _run("--store", str(tmp_path / "s"), "demo", "retail")
    assert code == 0, out
    for text in ("(1) live", "(2) by the day it happened", "CorrectionIssued", "2,200 -> 4,200"):
        assert text in out
    code, out = _run("--store", str(tmp_path / "w"), "demo", "retail-week", "--json")
    last = json.loads(out.strip().splitlines()[-1])
    assert (last["as_happened"], last["as_known_at_end_of_day"]) == (4_550_000, 1_000_000)
    assert last["adjustments"][0]["belongs_to"] == "2026-11-30"


def test_report_views(tmp_path: Path) -> None:
    store = str(tmp_path / "shops")
    assert _run("--store", store, "demo", "retail", "--json")[0] == 0

    def rows(*args: str) -> list[dict]:
        code, out = _run("--store", store, "report", "--json", *args)
        assert code == 0, out
        return [json.loads(line) for line in out.strip().splitlines()]

    assert [r["value"] for r in rows()] == [4200]
    assert [r["value"] for r in rows("--as-known-at", "2026-11-24T23:59:59+08:00")] == [2200]
    assert [(r["period"], r["value"]) for r in rows("--axis", "recorded")] == [
        ("2026-11-24", 2200),
        ("2026-11-25", 2000),
    ]
    assert [r["value"] for r in rows("--period", "hour", "--from", "2026-11-24T09")] == [
        2000,
        1000,
        1200,
    ]
    assert [r["type"] for r in rows("--view", "feed")] == [
        "FigurePublished",
        "CorrectionIssued",
        "PeriodClosed",
    ]
    (day,) = rows("--view", "history", "--as-known-at", "2026-11-25T02:00+08:00")
    assert (day["value"], day["status"]) == (4200, "restating")
    code, out = _run("--store", store, "report")
    assert code == 0 and "4,200" in out


def test_report_bad_input_exits_2(tmp_path: Path) -> None:
    store = str(tmp_path / "shops")
    assert _run("--store", store, "demo", "retail", "--json")[0] == 0
    for args in (
        ["--view", "chart"],
        ["--axis", "happened"],
        ["--period", "week"],
        ["--as-known-at", "2026-11-24"],
        ["--books", "refunds"],
    ):
        result = CliRunner().invoke(cli, ["--store", store, "report", *args])
        assert result.exit_code == 2, (args, result.output)
    bank = CliRunner().invoke(cli, ["--store", str(tmp_path / "bank"), "demo"])
    assert bank.exit_code == 0
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "bank"), "report"])
    assert result.exit_code == 2 and "keeps no books" in result.output
