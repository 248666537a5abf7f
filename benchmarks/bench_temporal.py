"""Bitemporal books (seed 000): the as-of-S daily report over a long retail history, and the
cost of a late event.

  history      N sales (default 1,000,000) over D days (default 365) in Asia/Taipei: online
               sales recorded as they happen; 5% late: mostly shop sales uploaded at 02:00
               the next day, a fifth of them 1 to 5 days late (some after their day closed).
               Written to an embedded log (sync="none", 1,000 events per commit, the store's
               clock set to each commit's time), then the retail books' projection caught up.
  report       `ledger.report(axis="occurred", period="day", as_known_at=S)` for random S
               across the history: every day's figure as known at S; median and p99 ms.
  late event   one late sale appended, then the books caught up (the projection applies it:
               one fact row, one cell, the checkpoint); median ms over many, beside the
               recomputation of the report from scratch (reading the whole log and summing
               each sale into its day, as known now): the ratio is the target.
  advance      the books advanced once over the whole history (publish, correct, seal every
               day), then after each of the late sales again: its time, and how many days'
               figures it recomputed (one: the late sale's day; docs/temporal.md).

    python benchmarks/bench_temporal.py            # 1,000,000 sales: a few minutes
    python benchmarks/bench_temporal.py --quick    # CI-sized: seconds
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import eventbook as eb
from common import (
    Scratch,
    base_parser,
    check_store_url,
    emit_json,
    environment,
    err,
    median,
    percentile,
    print_table,
    ratio,
    verdict,
)
from eventbook.examples import retail

START = datetime(2025, 1, 1, tzinfo=UTC)  # 2025-01-01 08:00 in Taipei
LATE_SHARE = 0.05
DAY_S = 86_400


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def plan(events: int, days: int, seed: int) -> list[tuple[int, int, int]]:
    """(recorded second, occurred second, amount) after START, in recorded order."""
    rng = random.Random(seed)
    rows = []
    span = days * DAY_S
    for _ in range(events):
        occurred = rng.randrange(span)
        amount = rng.randrange(100, 100_000)
        if rng.random() < LATE_SHARE:
            if rng.random() < 0.8:  # the shop's upload: 02:00 Taipei (18:00 UTC) the next day
                recorded = (occurred // DAY_S) * DAY_S + DAY_S + 18 * 3600
                if recorded - occurred < 3600:
                    recorded += DAY_S
            else:
                recorded = occurred + rng.randrange(DAY_S, 5 * DAY_S)
        else:
            recorded = occurred + rng.randrange(0, 5)
        rows.append((recorded, occurred, amount))
    rows.sort()
    return rows


def build(
    store: eb.EventStore, clock: Clock, rows: list[tuple[int, int, int]], batch: int
) -> float:
    started = time.perf_counter()
    for n in range(0, len(rows), batch):
        chunk = rows[n : n + batch]
        clock.now = START + timedelta(seconds=chunk[-1][0])
        store.append(
            [
                eb.NewEvent(
                    "store-s1",
                    "SaleRecorded",
                    {"store_id": "s1", "amount": amount},
                    occurred_at=START + timedelta(seconds=occurred),
                )
                for _, occurred, amount in chunk
            ]
        )
    return time.perf_counter() - started


def recompute(store: eb.EventStore) -> tuple[float, dict[str, int]]:
    """The daily report by occurrence, from scratch: read the log, sum each sale into its day."""
    calendar = retail.calendar
    started = time.perf_counter()
    days: dict[str, int] = {}
    for e in store.read_all():
        if e.type == "SaleRecorded":
            key = calendar.key(e.occurred_at)
            days[key] = days.get(key, 0) + e.data["amount"]
    return time.perf_counter() - started, days


def advances(
    ledger: eb.Ledger, store: eb.EventStore, clock: Clock, rng: random.Random, count: int
) -> tuple[float, list[float], list[int]]:
    """The first advance over the whole history, then one after each of `count` late sales:
    its seconds, then each later one's ms and the number of days it recomputed."""
    started = time.perf_counter()
    ledger.advance(clock.now)
    first_s = time.perf_counter() - started
    advance_ms, recomputed = [], []
    for _ in range(count):
        clock.now += timedelta(seconds=60)
        occurred = clock.now - timedelta(days=rng.uniform(0.5, 2.5))
        sale = {"store_id": "s1", "amount": 100}
        store.append([eb.NewEvent("store-s1", "SaleRecorded", sale, occurred_at=occurred)])
        t0 = time.perf_counter()
        ledger.advance(clock.now)
        advance_ms.append((time.perf_counter() - t0) * 1000)
        recomputed.append(len(ledger.recomputed))
    return first_s, advance_ms, recomputed


def main() -> None:
    args = parse()
    scratch = Scratch.create(args.dir, "temporal", args.keep)
    clock = Clock()
    try:
        store = eb.open_store(scratch.path("shops"), sync="none", clock=clock)
        rows = plan(args.events, args.days, args.seed)
        err.print(f"writing {args.events:,} sales over {args.days} days")
        write_s = build(store, clock, rows, args.batch)
        ledger = eb.Ledger(retail.books, store, app=retail.app)
        started = time.perf_counter()
        ledger.catch_up()
        project_s = time.perf_counter() - started
        rng = random.Random(args.seed + 1)
        end_s = rows[-1][0]
        report_ms = []
        for _ in range(args.reports):
            at = START + timedelta(seconds=rng.randrange(end_s), microseconds=rng.randrange(10**6))
            t0 = time.perf_counter()
            ledger.report(axis="occurred", period="day", as_known_at=at)
            report_ms.append((time.perf_counter() - t0) * 1000)
        full = {r.period: r.value for r in ledger.report()}
        recompute_s, days = recompute(store)
        assert days == full, "the books disagree with the recomputation"
        late_ms = []
        for n in range(args.late):
            clock.now = START + timedelta(seconds=end_s + 60 * (n + 1))
            occurred = clock.now - timedelta(days=rng.uniform(0.5, 2.5))
            store.append(
                [
                    eb.NewEvent(
                        "store-s1",
                        "SaleRecorded",
                        {"store_id": "s1", "amount": 100},
                        occurred_at=occurred,
                    )
                ]
            )
            t0 = time.perf_counter()
            assert ledger.catch_up() == 1
            late_ms.append((time.perf_counter() - t0) * 1000)
        first_advance_s, advance_ms, recomputed = advances(ledger, store, clock, rng, args.late)
        report_p50 = round(median(report_ms), 3)
        late_p50 = round(median(late_ms), 3)
        over = ratio(recompute_s * 1000, late_p50)
        targets = {
            "report_as_of_p50_ms": verdict(report_p50, 50.0, at_most=True),
            "recompute_over_late_update": verdict(over, 50.0),
        }
        print_table(
            f"bitemporal books, {args.events:,} sales over {args.days} days",
            ["figure", "value", "target"],
            [
                ["write the log", f"{write_s:.1f} s", ""],
                ["project the books (catch-up)", f"{project_s:.1f} s", ""],
                [
                    "as-of-S daily report, p50 / p99",
                    f"{report_p50:.2f} / {percentile(sorted(report_ms), 0.99):.2f} ms",
                    "<= 50 ms",
                ],
                ["late event, incremental update p50", f"{late_p50:.3f} ms", ""],
                ["recompute the report from scratch", f"{recompute_s * 1000:,.0f} ms", ""],
                ["recompute / incremental", f"{over:,.0f}x" if over else "-", ">= 50x"],
                ["advance over the whole history", f"{first_advance_s:.1f} s", ""],
                [
                    "advance after a late event, p50",
                    f"{median(advance_ms):.2f} ms, {max(recomputed)} day(s) recomputed",
                    "",
                ],
            ],
            text_columns=1,
        )
        result: dict[str, Any] = {
            "benchmark": "temporal",
            "events": args.events,
            "targets": targets,
            "figures": {
                "write_s": round(write_s, 2),
                "project_s": round(project_s, 2),
                "report_ms_p50": report_p50,
                "report_ms_p99": round(percentile(sorted(report_ms), 0.99), 3),
                "late_update_ms_p50": late_p50,
                "late_update_ms_p99": round(percentile(sorted(late_ms), 0.99), 3),
                "recompute_ms": round(recompute_s * 1000, 1),
                "days_reported": len(full),
                "first_advance_s": round(first_advance_s, 2),
                "late_advance_ms_p50": round(median(advance_ms), 3),
                "late_advance_days_recomputed_max": max(recomputed),
            },
            "config": {
                "quick": args.quick,
                "events": args.events,
                "days": args.days,
                "late_share": LATE_SHARE,
                "reports": args.reports,
                "late": args.late,
                "batch": args.batch,
                "seed": args.seed,
            },
            "disk": scratch.describe(),
            "environment": environment(),
        }
        ledger.close()
        store.close()
        emit_json(result, "bench_temporal", args.json_out)
    finally:
        scratch.close()


def parse() -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=None, help="sales (default 1,000,000)")
    parser.add_argument("--days", type=int, default=None, help="days of history (default 365)")
    parser.add_argument("--reports", type=int, default=None, help="reports timed (default 50)")
    parser.add_argument("--late", type=int, default=None, help="late events timed (default 200)")
    parser.add_argument("--batch", type=int, default=1000, help="events per commit")
    args = parser.parse_args()
    check_store_url(parser, args.store_url)
    args.events = args.events or (20_000 if args.quick else 1_000_000)
    args.days = args.days or (30 if args.quick else 365)
    args.reports = args.reports or (20 if args.quick else 50)
    args.late = args.late or (30 if args.quick else 200)
    if min(args.events, args.days, args.reports, args.late, args.batch) < 1:
        parser.error("--events, --days, --reports, --late and --batch must be at least 1")
    return args


if __name__ == "__main__":
    main()
