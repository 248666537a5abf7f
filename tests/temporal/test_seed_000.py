"""Seed 000's two stories on the retail books, with the seed's own numbers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

import eventbook as eb
from eventbook.examples import retail
from eventbook.temporal.notices import AdjustmentBooked, CorrectionIssued, PeriodClosed

DAY = retail.DAY


class StoryClock:
    def __init__(self) -> None:
        self.now = retail.FIRST_STORY[0].at

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    clock: StoryClock
    store: eb.EventStore
    engine: eb.Engine
    ledger: eb.Ledger

    def play(self, story: list[retail.Step]) -> dict[str, list[eb.RecordedEvent]]:
        written = {}
        for step in story:
            self.clock.now = step.at
            retail.record(self.engine, step)
            written[step.title] = self.ledger.advance(step.at)
        return written


@pytest.fixture
def world() -> Iterator[World]:
    clock = StoryClock()
    store = eb.open_store("memory://", clock=clock)
    with eb.Ledger(retail.books, store, app=retail.app) as ledger:
        yield World(clock, store, eb.Engine(retail.app, store, clock=clock), ledger)
    store.close()


def test_the_first_story_views_and_notices(world: World) -> None:
    written = world.play(retail.FIRST_STORY)
    by_step = [[n.type for n in notices] for notices in written.values()]
    assert by_step == [[], [], [], [], ["FigurePublished"], ["CorrectionIssued"], ["PeriodClosed"]]
    ledger = world.ledger
    end_of_day = retail.taipei("2026-11-25", 0)
    # (2) the history by occurrence: 2,200 as known at midnight, 4,200 once the shop uploaded
    assert [r.value for r in ledger.report(as_known_at=end_of_day)] == [2200]
    assert [(r.period, r.value, r.count) for r in ledger.report()] == [(DAY, 4200, 3)]
    # the purpose rule: by the day it arrived (follow-up work), the shop's 2,000 is the 25th's
    assert [(r.period, r.value) for r in ledger.report(axis="recorded")] == [
        (DAY, 2200),
        ("2026-11-25", 2000),
    ]
    # (1) the live figure as received: 2,200 at 21:00; 2,000 at 02:00, all of it from the 24th
    assert ledger.live(retail.taipei(DAY, 21)).value == 2200
    live = ledger.live(retail.taipei("2026-11-25", 2))
    assert (live.period, live.value, live.late_value) == ("2026-11-25", 2000, 2000)
    # (3) the correction: old 2,200, new 4,200, caused by the shop's upload
    upload = world.store.read_commit("cmd:sale-c")[0]
    (correction,) = ledger.corrections()
    assert (correction.period, correction.old, correction.new) == (DAY, 2200, 4200)
    assert correction.causes == [upload.id]
    assert correction.cause_positions == [upload.position]
    # closed 72 hours after the day ended, sealed at 4,200 with a digest of its three sales
    closed = next(r for r in ledger.feed() if r.type == "PeriodClosed").as_(PeriodClosed)
    assert (closed.period, closed.value, closed.count) == (DAY, 4200, 3)
    assert datetime.fromisoformat(closed.as_known_at) == retail.taipei("2026-11-28", 0)
    assert closed.digest == ledger.queries.digest(DAY, 2**62)


def test_views_as_of_each_step_are_the_same_after_the_story(world: World) -> None:
    """Every view is asked "as known at" a time, so it does not depend on when it is asked."""
    seen = []
    for step in retail.FIRST_STORY:
        world.clock.now = step.at
        retail.record(world.engine, step)
        world.ledger.advance(step.at)
        seen.append((world.ledger.history(step.at), world.ledger.live(step.at)))
    again = [(world.ledger.history(s.at), world.ledger.live(s.at)) for s in retail.FIRST_STORY]
    assert again == seen
    assert [h[0].value if h else 0 for h, _ in seen] == [0, 1000, 2200, 2200, 2200, 4200, 4200]
    assert [h[0].status if h else None for h, _ in seen][-3:] == [
        "restating",
        "restating",
        "closed",
    ]


def test_an_advance_again_writes_nothing(world: World) -> None:
    world.play(retail.FIRST_STORY)
    version = world.ledger.state().version
    assert world.ledger.advance(retail.FIRST_STORY[-1].at) == []
    assert world.ledger.advance(retail.FIRST_STORY[-1].at + timedelta(days=3)) == []
    assert world.ledger.state().version == version


def test_the_week_story(world: World) -> None:
    written = world.play(retail.WEEK_STORY)
    monday, saturday = retail.WEEK[0], retail.WEEK[5]
    ledger = world.ledger
    # Tuesday to Thursday: the daily reports of yesterday, as known at its end
    published = [
        (r.data["period"], r.data["value"]) for r in ledger.feed() if r.type == "FigurePublished"
    ]
    assert published == [
        (monday, 1_000_000),
        (retail.WEEK[1], 1_200_000),
        (retail.WEEK[2], 1_100_000),
    ]
    # Thursday: the shop's Monday total of 3,500,000 restates Monday (analysis: it happened then)
    thursday = [n.type for n in written[retail.WEEK_STORY[3].title]]
    assert thursday[0] == "CorrectionIssued"
    (correction,) = ledger.corrections()
    assert (correction.period, correction.old, correction.new) == (monday, 1_000_000, 4_500_000)
    # ... and is counted on Thursday by the day it arrived (follow-up: cash in hand)
    by_arrival = {r.period: r.value for r in ledger.report(axis="recorded")}
    assert by_arrival[retail.WEEK[3]] == 3_500_000
    # Friday: Monday closes, sealed at 4,500,000
    sealed = next(r.as_(PeriodClosed) for r in ledger.feed() if r.type == "PeriodClosed")
    assert (sealed.period, sealed.value) == (monday, 4_500_000)
    # Saturday: a Monday receipt after the close is booked into Saturday, linked to Monday
    (adjustment,) = [r.as_(AdjustmentBooked) for r in ledger.feed() if r.type == "AdjustmentBooked"]
    assert (adjustment.period, adjustment.belongs_to, adjustment.value) == (
        saturday,
        monday,
        50_000,
    )
    at_end = {r.period: r for r in ledger.history(retail.WEEK_STORY[-1].at)}
    assert (at_end[monday].value, at_end[monday].status) == (4_500_000, "closed")
    assert at_end[saturday].adjustments_value == 50_000
    # the raw bitemporal figure still knows the truth: Monday happened at 4,550,000
    assert {r.period: r.value for r in ledger.report()}[monday] == 4_550_000
    assert len([r for r in ledger.feed() if r.type == "CorrectionIssued"]) == 1  # no silent change
    assert all(isinstance(c, CorrectionIssued) for c in ledger.corrections())


def test_closes_and_adjustments_do_not_depend_on_when_the_books_advance(world: World) -> None:
    """Advancing once after the whole week seals the same figures and books the same
    adjustments as advancing at every step (only the corrections in between differ)."""
    world.play(retail.WEEK_STORY)
    stepwise = _sealed_and_adjusted(world.ledger)
    clock = StoryClock()
    store = eb.open_store("memory://", clock=clock)
    engine = eb.Engine(retail.app, store, clock=clock)
    for step in retail.WEEK_STORY:
        clock.now = step.at
        retail.record(engine, step)
    with eb.Ledger(retail.books, store) as once:
        once.advance(retail.WEEK_STORY[-1].at)
        assert _sealed_and_adjusted(once) == stepwise
    store.close()


def _sealed_and_adjusted(ledger: eb.Ledger) -> list[tuple]:
    out = []
    for r in ledger.feed():
        if r.type == "PeriodClosed":
            out.append(("closed", r.data["period"], r.data["value"], r.data["count"]))
        elif r.type == "AdjustmentBooked":
            out.append(("adjusted", r.data["period"], r.data["belongs_to"], r.data["value"]))
    return sorted(out)
