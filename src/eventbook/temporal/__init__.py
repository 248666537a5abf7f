"""Bitemporal books (seed 000): two times on every event, reports along either, periods that
close after a maximum lateness, adjustments and correction notices.

    books = eb.Books(eb.Measure("sales", handles=["SaleRecorded"], value="amount"),
                     eb.Calendar(tz="Asia/Taipei", max_lateness=timedelta(hours=72)))
    app = eb.Application(..., projections=[books.projection])
    ledger = eb.Ledger(books, store)
    ledger.report(axis="occurred", period="day", as_known_at=S)
    ledger.advance(now); ledger.feed()

calendar   periods, their names, end and close; the occurred-time rule
books      Measure and Books: the projection (facts and cells tables)
queries    reports and figures "as it was at T, as known at S"
notices    the notices as events, and their fold
ledger     the three views and the advance
picture    the bitemporal picture as data (what `report --plot` draws)
drawing    drawing it with matplotlib (the optional extra `eventbook[plot]`)
"""

from eventbook.temporal.books import Books, Measure
from eventbook.temporal.calendar import Calendar
from eventbook.temporal.drawing import draw
from eventbook.temporal.ledger import HistoryRow, Ledger, Live
from eventbook.temporal.notices import (
    NOTICES,
    AdjustmentBooked,
    CorrectionIssued,
    FigurePublished,
    PeriodClosed,
)
from eventbook.temporal.picture import Change, Picture, picture_of
from eventbook.temporal.queries import Figure, ReportRow

__all__ = [
    "NOTICES",
    "AdjustmentBooked",
    "Books",
    "Calendar",
    "Change",
    "CorrectionIssued",
    "Figure",
    "FigurePublished",
    "HistoryRow",
    "Ledger",
    "Live",
    "Measure",
    "PeriodClosed",
    "Picture",
    "ReportRow",
    "draw",
    "picture_of",
]
