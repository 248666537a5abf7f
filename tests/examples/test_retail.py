"""Seed 000's retailer: sales by store and by the day they happened, late uploads included."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

import eventbook as eb
from eventbook.cli.app import app as cli
from eventbook.examples import retail
from eventbook.read_models import open_read_models


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def test_store_sales_sum_by_the_day_a_sale_happened(tmp_path: Path) -> None:
    with eb.open_store(tmp_path / "shops") as store:
        engine = eb.Engine(retail.app, store)
        models = open_read_models(store, {"sqlite"})
        runner = eb.ProjectionRunner(store, retail.app, models)
        sales = [("s1", 100, at(23, 10)), ("s1", 50, at(23, 19)), ("s2", 70, at(24, 9))]
        for n, (shop, amount, when) in enumerate(sales):
            engine.execute(
                retail.RecordSale(store_id=shop, amount=amount),
                command_id=f"sale-{n}",
                occurred_at=when,
            )
        # the night upload of s2 brings a sale of the 23rd, recorded on the 24th or later
        late = engine.execute(
            retail.RecordSale(store_id="s2", amount=30), command_id="sale-9", occurred_at=at(23, 20)
        )
        again = engine.execute(  # the same upload sent twice: recorded once
            retail.RecordSale(store_id="s2", amount=30), command_id="sale-9", occurred_at=at(23, 20)
        )
        assert again.duplicate
        rows = (
            models["sqlite"].query(
                "SELECT store_id, day, total, sales FROM store_sales ORDER BY store_id, day",
                min_position=late.position,
                projections=["store_sales"],
                timeout=0,
            )
            if runner.catch_up() >= 0
            else []
        )
        assert rows == [
            ("s1", "2026-11-23", 150, 2),
            ("s2", "2026-11-23", 30, 1),
            ("s2", "2026-11-24", 70, 1),
        ]
        assert engine.state("store-s2").state == retail.Store(2, 100)
        models["sqlite"].close()


def test_retail_from_the_command_line(tmp_path: Path) -> None:
    store = str(tmp_path / "shops")
    run = CliRunner().invoke(
        cli,
        [
            "--store",
            store,
            "run",
            "--app",
            "eventbook.examples.retail:app",
            "RecordSale",
            '{"store_id":"s1","amount":1250}',
            "--id",
            "sale-1",
            "--occurred-at",
            "2026-11-24T18:30:00Z",
        ],
    )
    assert run.exit_code == 0, run.output
    assert CliRunner().invoke(cli, ["--store", store, "projections", "run"]).exit_code == 0
    status = CliRunner().invoke(cli, ["--store", store, "projections", "status", "--json"])
    statuses = {s["name"]: s for s in map(json.loads, status.stdout.splitlines())}
    assert set(statuses) == {"store_sales", "books_sales"}  # the bitemporal books too
    assert all(s["lag"] == 0 for s in statuses.values())
    bad = CliRunner().invoke(
        cli, ["--store", store, "run", "RecordSale", '{"store_id":"s1","amount":0}']
    )
    assert bad.exit_code == 2 and "amount" in bad.output
