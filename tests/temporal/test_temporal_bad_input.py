"""Bad input to the books: refused with a message that says what and why, nothing written."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import eventbook as eb
from eventbook.cli.app import app as cli
from eventbook.examples import retail

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


@pytest.fixture
def engine() -> eb.Engine:
    store = eb.open_store("memory://", clock=lambda: NOW)
    return eb.Engine(retail.app, store, clock=lambda: NOW)


def _sale(engine: eb.Engine, occurred_at: datetime) -> None:
    retail.books.execute(
        engine, retail.RecordSale(store_id="s1", amount=100), occurred_at=occurred_at
    )


@pytest.mark.parametrize(
    ("occurred_at", "says"),
    [
        (NOW + timedelta(minutes=6), "in the future"),
        (NOW + timedelta(days=400), "in the future"),
        (datetime(2019, 12, 31, 23, 59, tzinfo=UTC), "before the horizon"),
        (datetime(2026, 11, 24, 9), "no time zone"),
    ],
)
def test_bad_occurred_times_are_refused_and_nothing_is_written(
    engine: eb.Engine, occurred_at: datetime, says: str
) -> None:
    with pytest.raises(eb.InvalidInput, match=says):
        _sale(engine, occurred_at)
    assert engine.store.head_position() == 0


def test_within_the_skew_and_at_the_horizon_are_accepted(engine: eb.Engine) -> None:
    _sale(engine, NOW + timedelta(minutes=5))
    _sale(engine, datetime(2020, 1, 1, tzinfo=UTC))
    assert engine.store.head_position() == 2


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"tz": "Mars/Olympus"}, "time zone 'Mars/Olympus' is unknown"),
        ({"period": "week"}, "period 'week' is unknown"),
        ({"max_lateness": timedelta(hours=-1)}, "max_lateness must be a timedelta >= 0"),
        ({"max_lateness": timedelta(days=400)}, "over the limit"),
        ({"horizon": datetime(2020, 1, 1)}, "no time zone"),
    ],
)
def test_bad_calendars_are_refused(settings: dict, says: str) -> None:
    with pytest.raises(eb.InvalidInput, match=says):
        eb.Calendar(**settings)


@pytest.mark.parametrize("name", ["", "Sales", "1sales", "sales-day", "x" * 41])
def test_bad_measure_names_are_refused(name: str) -> None:
    with pytest.raises(eb.InvalidInput, match="measure name"):
        eb.Measure(name, handles=["SaleRecorded"])


def test_bad_questions_are_refused() -> None:
    store = eb.open_store("memory://")
    with eb.Ledger(retail.books, store) as ledger:
        with pytest.raises(eb.InvalidInput, match="axis 'happened' is unknown"):
            ledger.report(axis="happened")
        with pytest.raises(eb.InvalidInput, match="period 'week' is unknown"):
            ledger.report(period="week")
        with pytest.raises(eb.InvalidInput, match="no time zone"):
            ledger.report(as_known_at=datetime(2026, 11, 24))
        with pytest.raises(eb.InvalidInput, match="not a period name"):
            ledger.calendar.end("24/11/2026")


def test_a_non_integer_value_stops_the_books_at_that_event() -> None:
    store = eb.open_store("memory://")
    store.append([eb.NewEvent("store-s1", "SaleRecorded", {"store_id": "s1", "amount": "12"})])
    with eb.Ledger(retail.books, store) as ledger:
        ledger.catch_up()
        (status,) = ledger.runner.status()
        assert status.status == "stopped" and "expected an integer" in status.error


def test_a_changed_calendar_asks_for_a_rebuild(tmp_path) -> None:
    with eb.open_store(tmp_path / "s") as store:
        with eb.Ledger(retail.books, store) as ledger:
            ledger.catch_up()
        moved = eb.Books(retail.books.measure, eb.Calendar(tz="UTC"))
        with eb.Ledger(moved, store) as ledger, pytest.raises(eb.InvalidInput, match="bump"):
            ledger.catch_up()


def test_the_engine_applies_the_applications_occurred_at_check(engine: eb.Engine) -> None:
    """retail.app declares its calendar's rule: engine.execute refuses as books.execute does."""
    for bad in (NOW + timedelta(minutes=6), datetime(2019, 6, 1, tzinfo=UTC)):
        with pytest.raises(eb.InvalidInput, match=r"in the future|before the horizon"):
            engine.execute(retail.RecordSale(store_id="s1", amount=1), occurred_at=bad)
    assert engine.store.head_position() == 0
    engine.execute(retail.RecordSale(store_id="s1", amount=1), occurred_at=NOW)
    assert engine.store.head_position() == 1


def test_an_application_without_a_check_takes_any_aware_occurred_at() -> None:
    app = dataclasses.replace(retail.app, occurred_at_check=None)
    engine = eb.Engine(app, eb.open_store("memory://", clock=lambda: NOW), clock=lambda: NOW)
    engine.execute(
        retail.RecordSale(store_id="s1", amount=1), occurred_at=datetime(2019, 6, 1, tzinfo=UTC)
    )
    assert engine.store.head_position() == 1


@pytest.mark.parametrize(
    ("occurred_at", "says"),
    [
        ("2099-01-01T00:00:00+08:00", "in the future"),
        ("2019-12-31T23:00:00Z", "before the horizon"),
        ("2026-11-24T09:00:00", "time zone"),
    ],
)
def test_eventbook_run_refuses_a_bad_occurred_at_and_writes_nothing(
    tmp_path: Path, occurred_at: str, says: str
) -> None:
    store = tmp_path / "shops"
    args = ["--store", str(store), "run", "--app", "eventbook.examples.retail:app"]
    args += ["RecordSale", '{"store_id":"s1","amount":100}', "--occurred-at", occurred_at]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not store.exists()  # refused before the store was opened: nothing written
    ok = CliRunner().invoke(cli, [*args[:-1], "2024-03-01T09:00:00+08:00"])
    assert ok.exit_code == 0, ok.output
    assert CliRunner().invoke(cli, [*args[:-1], occurred_at]).exit_code == 2
    with eb.open_store(store) as opened:
        assert opened.head_position() == 1
