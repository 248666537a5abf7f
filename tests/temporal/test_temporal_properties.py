"""Properties: any report "as known at S" equals a sum recomputed from the log from scratch,
along either axis, by hour, day or month, in a zone with a half-hour offset too; and a late
event changes one fact row and one cell, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

import eventbook as eb
from eventbook.temporal.calendar import KEY_CHARS

START = datetime(2026, 3, 25, tzinfo=UTC)  # spans Europe's summer-time change, and a month end
HOURS = 24 * 12


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


sales = st.lists(
    st.tuples(
        st.integers(0, HOURS * 60),  # minutes after START it happened
        st.sampled_from([0, 0, 0, 1, 30, 26 * 60, 80 * 60, 200 * 60]),  # minutes late
        st.integers(-50, 500),  # value (refunds too)
    ),
    max_size=60,
)


def _books(tz: str) -> eb.Books:
    measure = eb.Measure("sales", handles=["Sold"], value="amount")
    return eb.Books(measure, eb.Calendar(tz=tz, max_lateness=timedelta(hours=72)))


def _fill(rows: list[tuple[int, int, int]]) -> eb.EventStore:
    clock = Clock()
    store = eb.open_store("memory://", clock=clock)
    for happened, late, amount in sorted(rows, key=lambda r: r[0] + r[1]):
        occurred = START + timedelta(minutes=happened)
        clock.now = occurred + timedelta(minutes=late)
        store.append([eb.NewEvent("shop-1", "Sold", {"amount": amount}, occurred_at=occurred)])
    return store


def _scratch(store, books, axis, period, as_known_at):
    """The report recomputed from the log, event by event."""
    sums: dict[str, list[int]] = {}
    n = KEY_CHARS[period]
    for e in store.read_all():
        if as_known_at is not None and e.recorded_at > as_known_at:
            continue
        t = e.occurred_at if axis == "occurred" else e.recorded_at
        key = books.calendar.key(t, "hour")[:n]
        s = sums.setdefault(key, [0, 0])
        s[0] += e.data["amount"]
        s[1] += 1
    return [(k, v[0], v[1]) for k, v in sorted(sums.items())]


@settings(max_examples=40, deadline=None)
@given(
    rows=sales,
    tz=st.sampled_from(["UTC", "Asia/Taipei", "Asia/Kolkata", "Europe/Paris"]),
    axis=st.sampled_from(["occurred", "recorded"]),
    period=st.sampled_from(["hour", "day", "month"]),
    known_minutes=st.one_of(st.none(), st.integers(0, HOURS * 60 + 300 * 60)),
)
def test_a_report_as_known_at_s_is_the_sum_recomputed_from_scratch(
    rows, tz, axis, period, known_minutes
) -> None:
    store = _fill(rows)
    books = _books(tz)
    at = None if known_minutes is None else START + timedelta(minutes=known_minutes, seconds=7)
    with eb.Ledger(books, store) as ledger:
        ledger.catch_up()
        got = [
            (r.period, r.value, r.count)
            for r in ledger.report(axis=axis, period=period, as_known_at=at)
        ]
        assert got == _scratch(store, books, axis, period, at)
        if at is not None:
            fig = ledger.figure(occurred_until=at, as_known_at=at)
            assert fig.value == sum(
                e.data["amount"]
                for e in store.read_all()
                if e.occurred_at < at and e.recorded_at <= at
            )
    store.close()


@settings(max_examples=15, deadline=None)
@given(rows=sales)
def test_the_batch_handler_and_the_per_event_handler_build_the_same_books(rows) -> None:
    store = _fill(rows)
    books = _books("Asia/Taipei")
    dumps = []
    for batch in (True, False):
        import dataclasses

        projection = books.projection
        if not batch:
            projection = dataclasses.replace(projection, batch_handler=None)
        app = eb.Application("t", [], [], [], projections=[projection])
        models = eb.Ledger(books, store).models
        eb.ProjectionRunner(store, app, models, batch_events=7).catch_up()
        model = models["sqlite"]
        dumps.append(
            (
                model.query(f"SELECT * FROM {books.cells} ORDER BY 1, 2, 3"),
                model.query(f"SELECT * FROM {books.facts} ORDER BY 1"),
            )
        )
        model.close()
    assert dumps[0] == dumps[1]
    store.close()


def test_a_late_event_touches_one_fact_and_one_cell() -> None:
    rows = [(h * 60, 0, 10) for h in range(HOURS)]  # one sale an hour, on time
    store = _fill(rows)
    books = _books("Asia/Taipei")
    with eb.Ledger(books, store) as ledger:
        ledger.catch_up()
        before = ledger.report()
        db = ledger.models["sqlite"].db
        cells_before = db.execute(f"SELECT * FROM {books.cells}").fetchall()
        changes = db.total_changes
        store.append(
            [eb.NewEvent("shop-1", "Sold", {"amount": 5}, occurred_at=START + timedelta(hours=3))]
        )
        ledger.catch_up()
        # the fact, the cell and the checkpoint row: three rows written, nothing recomputed
        assert db.total_changes - changes == 3
        cells_after = db.execute(f"SELECT * FROM {books.cells}").fetchall()
        assert len(set(cells_after) - set(cells_before)) == 1
        after = ledger.report()
        changed = [
            (a.period, a.value - b.value) for a, b in zip(after, before, strict=True) if a != b
        ]
        assert changed == [(ledger.calendar.key(START + timedelta(hours=3)), 5)]
    store.close()
