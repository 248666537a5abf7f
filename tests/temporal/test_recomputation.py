"""Snapshots stay correct (issue 9, item 8): a late event invalidates exactly the period
figures and report rows it affects, and nothing else is recomputed. Counted: the rows the books
write, the periods an advance recomputes, the notices it writes, and the engine's snapshots
(per stream and day-end cut-offs), which late events never touch."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

import eventbook as eb
from eventbook.examples import retail
from eventbook.store.snapshots import DAY_END_KEY, Snapshot

DAYS = [(date(2026, 10, 1) + timedelta(days=n)).isoformat() for n in range(20)]
APP = dataclasses.replace(retail.app, snapshot_every=7)  # stream snapshots along the way


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Shop:
    clock: Clock
    store: eb.EventStore
    engine: eb.Engine
    ledger: eb.Ledger

    def sell(self, amount: int, happened: datetime, sale_id: str) -> None:
        step = retail.Step(self.clock.now, sale_id, ("s1", amount, happened), sale_id)
        retail.record(self.engine, step)

    def books_rows_written(self) -> int:
        """Catch the books up; return the rows that wrote (SQLite's change counter)."""
        db = self.ledger.models["sqlite"].db
        before = db.total_changes
        self.ledger.catch_up()
        return db.total_changes - before

    def snapshots(self) -> list[Snapshot]:
        return sorted(self.store.snapshots().all(), key=lambda s: (s.key, s.position))


@pytest.fixture
def shop() -> Iterator[Shop]:
    """Twenty days of sales, three a day on time; the books advanced at every midnight and a
    day-end cut-off taken for each day: days 1-16 are closed, 17-19 restating, 20 open."""
    clock = Clock(retail.taipei(DAYS[0], 8))
    store = eb.open_store("memory://", clock=clock)
    engine = eb.Engine(APP, store, clock=clock)
    with eb.Ledger(retail.books, store, app=APP) as ledger:
        shop = Shop(clock, store, engine, ledger)
        for n, day in enumerate(DAYS):
            for hour in (9, 13, 18):
                clock.now = retail.taipei(day, hour)
                shop.sell(100 + hour, clock.now, f"{day}-{hour}")
            if n + 1 < len(DAYS):
                clock.now = retail.taipei(DAYS[n + 1], 0)
                ledger.advance(clock.now)
                engine.day_end(date.fromisoformat(day))
        clock.now = retail.taipei(DAYS[-1], 20)
        ledger.advance(clock.now)
        shop.books_rows_written()
        yield shop
    store.close()


def test_the_fixture_has_closed_restating_and_open_days(shop: Shop) -> None:
    status = {r.period: r.status for r in shop.ledger.history(shop.clock.now)}
    assert [status[d] for d in DAYS].count("closed") == 16
    assert [status[d] for d in DAYS[16:]] == ["restating"] * 3 + ["open"]
    assert shop.ledger.advance(shop.clock.now) == [] and shop.ledger.recomputed == []


def test_an_advance_with_nothing_new_recomputes_nothing(shop: Shop) -> None:
    shop.clock.now += timedelta(hours=2)  # still the last day, nothing recorded since
    assert shop.ledger.advance(shop.clock.now) == []
    assert shop.ledger.recomputed == []


def test_a_midnight_recomputes_the_day_that_ended_and_the_day_that_closes(shop: Shop) -> None:
    midnight = retail.taipei(DAYS[-1], 0) + timedelta(days=1)
    shop.clock.now = midnight
    notices = shop.ledger.advance(midnight)
    # day 20 ended (published); day 17 reached its close (sealed); days 18, 19 left alone
    assert sorted(shop.ledger.recomputed) == [DAYS[16], DAYS[19]]
    assert [(n.type, n.data["period"]) for n in notices] == [
        ("PeriodClosed", DAYS[16]),
        ("FigurePublished", DAYS[19]),
    ]


def test_a_late_event_for_a_restating_day_changes_that_day_only(shop: Shop) -> None:
    ledger, day = shop.ledger, DAYS[17]
    report_before = {r.period: r for r in ledger.report()}
    recorded_before = {r.period: r for r in ledger.report(axis="recorded")}
    snapshots_before = shop.snapshots()
    shop.clock.now += timedelta(minutes=30)
    shop.sell(5000, retail.taipei(day, 11), "late-restating")
    # the books: one fact row, one cell, the checkpoint: three rows, nothing recomputed
    assert shop.books_rows_written() == 3
    report_after = {r.period: r for r in ledger.report()}
    changed = [p for p in report_after if report_after[p] != report_before.get(p)]
    assert changed == [day]  # by the day it happened: that day's row only
    assert report_after[day].value == report_before[day].value + 5000
    recorded_after = {r.period: r for r in ledger.report(axis="recorded")}
    changed = [p for p in recorded_after if recorded_after[p] != recorded_before.get(p)]
    assert changed == [DAYS[-1]]  # by the day it arrived: today's row only
    # the advance recomputes that day's figure only, and corrects it
    notices = ledger.advance(shop.clock.now)
    assert ledger.recomputed == [day]
    assert [(n.type, n.data["period"], n.data["new"] - n.data["old"]) for n in notices] == [
        ("CorrectionIssued", day, 5000)
    ]
    _engine_snapshots_untouched(shop, snapshots_before)


def test_a_late_event_for_a_closed_day_is_an_adjustment_and_recomputes_nothing(
    shop: Shop,
) -> None:
    ledger, day = shop.ledger, DAYS[3]
    sealed_before = {r.period: r.value for r in ledger.history(shop.clock.now)}
    snapshots_before = shop.snapshots()
    shop.clock.now += timedelta(minutes=30)
    shop.sell(700, retail.taipei(day, 15), "late-closed")
    assert shop.books_rows_written() == 3
    notices = ledger.advance(shop.clock.now)
    assert ledger.recomputed == []  # a sealed figure is never recomputed
    (adjustment,) = notices
    assert (adjustment.type, adjustment.data["belongs_to"], adjustment.data["period"]) == (
        "AdjustmentBooked",
        day,
        DAYS[-1],
    )
    history = {r.period: r for r in ledger.history(shop.clock.now)}
    assert {p: r.value for p, r in history.items()} == sealed_before  # no sealed figure moved
    assert history[DAYS[-1]].adjustments_value == 700
    _engine_snapshots_untouched(shop, snapshots_before)


def _engine_snapshots_untouched(shop: Shop, before: list[Snapshot]) -> None:
    """The engine's snapshots are prefixes of the log by recorded time: a late event (recorded
    now) changes none of them, no new one is taken, and folds from them stay exact."""
    after = shop.snapshots()
    assert after == before  # (61 sales: no multiple of snapshot_every crossed)
    day_ends = [s for s in after if s.key == DAY_END_KEY]
    assert len(day_ends) == len(DAYS) - 1
    for snap in day_ends[-3:]:
        with_snapshots = shop.engine.app_state(eb.Target(at_position=snap.position))
        scratch = shop.engine.app_state(eb.Target(at_position=snap.position), use_snapshots=False)
        assert with_snapshots.state_hash() == scratch.state_hash() == snap.state_hash
    # "as it really was" at a time before the late sale: the snapshots still serve, exactly
    for day in (DAYS[3], DAYS[17]):
        target = eb.Target(occurred_by=retail.taipei(day, 23))
        with_snapshots = shop.engine.state("store-s1", target)
        assert with_snapshots.snapshot is not None
        scratch = shop.engine.state("store-s1", target, use_snapshots=False)
        assert with_snapshots.state == scratch.state
