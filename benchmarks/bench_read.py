"""Reads: eventbook beside the peer on stores of 1,000 and of N events (default 1,000,000).

  read-all   every event decoded, in a fresh child process per reader, with its peak RSS growth
             over the RSS it had once the store was open (constant memory: < 50 MB)
  nth        random reads of the Nth event of the global order (the same n for both engines)
  open       open the store, ask for its head position, close: median of repeated opens
Both stores are loaded in bulk first (eventbook: 1,000 events per commit with sync="none"; the
peer: 1,000 events per save, its defaults). Every file is under one scratch directory (one
disk). Prints tables, then one JSON line with the ratios the issue sets targets for.

    python benchmarks/bench_read.py              # 1,000,000 events
    python benchmarks/bench_read.py --quick      # CI-sized
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ours
import peer
from common import (
    PeakRss,
    Scratch,
    Steps,
    Timing,
    base_parser,
    check_store_url,
    emit_json,
    environment,
    fmt_duration,
    fmt_rate,
    fmt_ratio,
    median,
    print_notes,
    print_table,
    ratio,
    verdict,
)

OURS = ours.LABEL
PEER = peer.LABEL
PEER_RAW = "eventsourcing (recorder, not decoded)"
CHILD_TIMEOUT_SECONDS = 3600


@dataclass
class Run:
    args: argparse.Namespace
    scratch: Scratch
    sizes: tuple[int, int]  # (small, large)
    ours_at: dict[int, str] = field(default_factory=dict)  # size -> store location
    peer_at: dict[int, str] = field(default_factory=dict)  # size -> SQLite file
    memory_stores: dict[int, Any] = field(default_factory=dict)  # memory:// only
    peer_settings: dict[str, Any] = field(default_factory=dict)
    loads: dict[str, float] = field(default_factory=dict)  # "engine/size" -> events/s


# -- loading -------------------------------------------------------------------------------------


def build(run: Run, progress: Steps) -> None:
    batch = run.args.load_batch
    for size in run.sizes:
        location = run.args.store_url or str(run.scratch.path(f"ours-{size}"))
        task = progress.task(f"load {OURS} ({size:,})", size)
        started = time.perf_counter()
        store = ours.open_ours(location, sync="none")  # a bulk load: no fdatasync per commit
        ours.load(store, size, batch, lambda n, t=task: progress.advance(t, n))
        if ours.is_memory(location):
            run.memory_stores[size] = store
        else:
            store.close()
        run.loads[f"{OURS}/{size}"] = size / (time.perf_counter() - started)
        run.ours_at[size] = location

        db = str(run.scratch.path(f"peer-{size}.sqlite"))
        task = progress.task(f"load {PEER} ({size:,})", size)
        started = time.perf_counter()
        app = peer.open_app(db)
        peer.load(app, size, batch, lambda n, t=task: progress.advance(t, n))
        run.peer_settings = peer.settings(app)
        app.close()
        run.loads[f"{PEER}/{size}"] = size / (time.perf_counter() - started)
        run.peer_at[size] = db


# -- read-all, in a fresh child process ----------------------------------------------------------


def child_read_all(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in the child: open, take the RSS baseline, read everything, report."""
    engine, location, page = spec["engine"], spec["location"], spec["page"]
    if engine == OURS:
        store = ours.open_ours(location)
        if ours.is_memory(location):  # nothing to share across processes: load it here
            ours.load(store, spec["events"], spec["load_batch"])
        events: Iterator[Any] = ours.read_all(store)
    else:
        app = peer.open_app(location)
        events = peer.read_all(app, page) if engine == PEER else peer.read_all_raw(app, page)
    count = 0
    with PeakRss() as rss:
        started = time.perf_counter()
        for _event in events:
            count += 1
        seconds = time.perf_counter() - started
    return {"events": count, "seconds": seconds, **rss.report()}


def read_all_in_child(run: Run, engine: str, size: int) -> dict[str, Any]:
    location = run.ours_at[size] if engine == OURS else run.peer_at[size]
    spec = {
        "engine": engine,
        "location": location,
        "events": size,
        "page": run.args.peer_page,
        "load_batch": run.args.load_batch,
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"reader child for {engine} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["events"] != size:
        raise RuntimeError(f"{engine} read {result['events']:,} events of {size:,}")
    return result


def read_all_rounds(run: Run, progress: Steps) -> dict[tuple[str, int], dict[str, Any]]:
    rounds = run.args.read_rounds
    plan = [(e, s) for s in run.sizes for e in (OURS, PEER, PEER_RAW)]
    task = progress.task("read-all (child processes)", rounds * len(plan))
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_index in range(rounds):
        for engine, size in plan:
            result = read_all_in_child(run, engine, size)
            results.setdefault((engine, size), []).append(result)
            progress.note(
                f"round {round_index + 1}/{rounds}  read-all {size:>10,}  {engine:<38} "
                f"{size / result['seconds']:>12,.0f} events/s  "
                f"RSS +{result['peak_rss_growth_mb']:.1f} MB"
            )
            progress.advance(task, force=True)
    return {key: summarise_reads(rows) for key, rows in results.items()}


def summarise_reads(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median rate over rounds; the worst (largest) memory growth of any round."""
    rates = [row["events"] / row["seconds"] for row in rows]
    return {
        "events_per_s": median(rates),
        "rounds_events_per_s": [round(r, 1) for r in rates],
        "peak_rss_growth_mb": max(row["peak_rss_growth_mb"] for row in rows),
        "peak_anon_growth_mb": max(row["peak_anon_growth_mb"] for row in rows),
        "baseline_rss_mb": rows[0]["baseline_rss_mb"],
    }


# -- Nth-event reads and open time, in this process ----------------------------------------------


@contextmanager
def nth_reader(run: Run, engine: str, size: int) -> Iterator[Callable[[int], Any]]:
    if engine == OURS:
        store = run.memory_stores.get(size) or ours.open_ours(run.ours_at[size])
        try:
            yield lambda n: ours.read_nth(store, n)
        finally:
            if size not in run.memory_stores:
                store.close()
    else:
        app = peer.open_app(run.peer_at[size])
        try:
            yield lambda n: peer.read_nth(app, n)
        finally:
            app.close()


def time_interleaved(calls: list[Callable[[int], Any]], count: int) -> list[Timing]:
    """`count` rounds of calling each of `calls` in turn with the round's index; one Timing per
    call. Interleaving the small and the large store puts any drift of the machine on both."""
    timings = [Timing() for _ in calls]
    clock = time.perf_counter
    for index in range(count):
        for call, timing in zip(calls, timings, strict=True):
            started = clock()
            call(index)
            timing.latencies.append(clock() - started)
    for timing in timings:
        timing.wall_seconds = sum(timing.latencies)
    return timings


def time_nth(run: Run, engine: str) -> list[Timing]:
    """Random Nth-event reads, the small and the large store in turn; the same n for both
    engines. The unmeasured warm-up reads also check (for eventbook) the position read."""
    args = run.args
    count, warmup = args.nth_reads, args.warmup
    positions = []
    for size in run.sizes:
        rng = random.Random(f"{args.seed}-{size}")
        positions.append([rng.randint(1, size) for _ in range(count + warmup)])
    with (
        nth_reader(run, engine, run.sizes[0]) as small,
        nth_reader(run, engine, run.sizes[1]) as large,
    ):
        readers = [small, large]
        for read, wanted in zip(readers, positions, strict=True):
            for n in wanted[count:]:
                event = read(n)
                if engine == OURS and event.position != n:
                    raise RuntimeError(f"asked for event {n:,}, got position {event.position:,}")
        return time_interleaved(
            [lambda i, r=r, p=p: r(p[i]) for r, p in zip(readers, positions, strict=True)], count
        )


def time_opens(run: Run, engine: str, warm: int = 3) -> list[Timing]:
    """Open, head, close: the small and the large store in turn, after `warm` unmeasured rounds
    (imports, first-use caches)."""
    if engine == OURS:
        openers = [lambda _i, at=run.ours_at[size]: ours.open_close(at) for size in run.sizes]
    else:
        openers = [lambda _i, at=run.peer_at[size]: peer.open_close(at) for size in run.sizes]
    time_interleaved(openers, warm)
    return time_interleaved(openers, run.args.opens)


def point_reads_and_opens(run: Run, progress: Steps) -> dict[str, dict[tuple[str, int], Timing]]:
    nth: dict[tuple[str, int], Timing] = {}
    opens: dict[tuple[str, int], Timing] = {}
    task = progress.task("nth reads and opens", 4)
    for engine in (OURS, PEER):
        for results, measure in ((nth, time_nth), (opens, time_opens)):
            for size, timing in zip(run.sizes, measure(run, engine), strict=True):
                results[(engine, size)] = timing
            progress.advance(task, force=True)
    return {"nth": nth, "open": opens}


# -- report --------------------------------------------------------------------------------------


def report(run: Run, reads: dict, points: dict) -> None:
    small, large = run.sizes
    tables(run, reads, points)
    nth, opens = points["nth"], points["open"]

    def read_rate(engine: str) -> float:
        return reads[(engine, large)]["events_per_s"]

    def p50(timings: dict, engine: str, size: int) -> float:
        return timings[(engine, size)].quantile_ms(0.5)

    ratios = {
        "read_all_ours_over_peer": ratio(read_rate(OURS), read_rate(PEER)),
        "read_all_ours_rss_growth_mb": reads[(OURS, large)]["peak_rss_growth_mb"],
        "nth_read_ours_large_over_small": ratio(p50(nth, OURS, large), p50(nth, OURS, small)),
        "open_ours_large_over_small": ratio(p50(opens, OURS, large), p50(opens, OURS, small)),
        "read_all_ours_over_peer_raw": ratio(read_rate(OURS), read_rate(PEER_RAW)),
        "nth_read_peer_over_ours_p50": ratio(p50(nth, PEER, large), p50(nth, OURS, large)),
        "open_peer_over_ours_p50": ratio(p50(opens, PEER, large), p50(opens, OURS, large)),
        "nth_read_peer_large_over_small": ratio(p50(nth, PEER, large), p50(nth, PEER, small)),
        "open_peer_large_over_small": ratio(p50(opens, PEER, large), p50(opens, PEER, small)),
        "read_all_peer_rss_growth_mb": reads[(PEER, large)]["peak_rss_growth_mb"],
    }
    targets = {
        "read_all_ours_over_peer": verdict(ratios["read_all_ours_over_peer"], 3.0),
        "read_all_ours_rss_growth_mb": verdict(
            ratios["read_all_ours_rss_growth_mb"], 50.0, at_most=True
        ),
        "nth_read_ours_large_over_small": verdict(
            ratios["nth_read_ours_large_over_small"], 2.0, at_most=True
        ),
        "open_ours_large_over_small": verdict(
            ratios["open_ours_large_over_small"], 2.0, at_most=True
        ),
    }
    print_notes(notes_for(run, targets))
    result = {
        "benchmark": "read",
        "events": large,
        "ratios": ratios,
        "targets": targets,
        "figures": figures(run, reads, points),
        "peer": {**run.peer_settings, "ratios_use": PEER, "context": PEER_RAW},
        "config": config(run),
        "disk": run.scratch.describe(),
        "environment": environment(),
    }
    emit_json(result, "bench_read", run.args.json_out)


def tables(run: Run, reads: dict, points: dict) -> None:
    small, large = run.sizes
    rows = []
    for (engine, size), r in reads.items():
        peer_rate = reads[(PEER, size)]["events_per_s"]
        rows.append(
            [
                engine,
                f"{size:,}",
                fmt_rate(r["events_per_s"]),
                f"{r['peak_rss_growth_mb']:.1f}",
                f"{r['peak_anon_growth_mb']:.1f}",
                f"{r['baseline_rss_mb']:.0f}",
                fmt_ratio(ratio(r["events_per_s"], peer_rate)),
            ]
        )
    columns = ["engine", "events", "events/s", "RSS +MB", "anon +MB", "RSS at open MB", "÷ peer"]
    print_table(
        f"Read-all, decoded (fresh child process each; median of {run.args.read_rounds} round(s),"
        " worst memory growth)",
        columns,
        rows,
    )
    rows = []
    for what, timings in (("nth read", points["nth"]), ("open", points["open"])):
        for engine in (OURS, PEER):
            at_small, at_large = timings[(engine, small)], timings[(engine, large)]
            rows.append(
                [
                    what,
                    engine,
                    fmt_duration(at_small.quantile_ms(0.5) / 1e3),
                    fmt_duration(at_large.quantile_ms(0.5) / 1e3),
                    fmt_duration(at_large.quantile_ms(0.99) / 1e3),
                    fmt_ratio(ratio(at_large.quantile_ms(0.5), at_small.quantile_ms(0.5))),
                ]
            )
    columns = [
        "operation",
        "engine",
        f"p50 @ {small:,}",
        f"p50 @ {large:,}",
        f"p99 @ {large:,}",
        "large ÷ small",
    ]
    print_table("Nth-event read (random n) and open time, in-process", columns, rows)


def figures(run: Run, reads: dict, points: dict) -> dict[str, Any]:
    result: dict[str, Any] = {"load_events_per_s": {k: round(v) for k, v in run.loads.items()}}
    for (engine, size), r in reads.items():
        result[f"read_all/{engine}/{size}"] = {
            k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()
        }
    for what, timings in points.items():
        for (engine, size), timing in timings.items():
            result[f"{what}/{engine}/{size}"] = {
                "p50_ms": round(timing.quantile_ms(0.5), 4),
                "p99_ms": round(timing.quantile_ms(0.99), 4),
                "count": len(timing.latencies),
            }
    return result


def config(run: Run) -> dict[str, Any]:
    args = run.args
    return {
        "store": args.store_url or "embedded log (path under --dir)",
        "quick": args.quick,
        "sizes": list(run.sizes),
        "read_rounds": args.read_rounds,
        "nth_reads": args.nth_reads,
        "opens": args.opens,
        "load_batch": args.load_batch,
        "peer_page": args.peer_page,
        "seed": args.seed,
    }


def notes_for(run: Run, targets: dict[str, dict[str, Any]]) -> list[str]:
    s = run.peer_settings
    load = ", ".join(f"{k} {v:,.0f}/s" for k, v in run.loads.items())
    notes = [
        f"peer: {s.get('library')} on SQLite {s.get('sqlite')}, journal_mode="
        f"{s.get('journal_mode')}, synchronous={s.get('synchronous')}; ratios use {PEER}: "
        f"recorder.select_notifications in pages of {run.args.peer_page} + "
        "mapper.to_domain_event; eventbook: store.read_all() yielding decoded events.",
        f"load (context, not a target; eventbook with sync=none): {load}",
        f"disk: {run.scratch.describe()['device']}; page cache warm (loaded just before).",
    ]
    if run.args.store_url:
        notes.append(
            f"[yellow]eventbook ran on {run.args.store_url}: a harness check, not a measurement"
        )
    for name, target in targets.items():
        bound = f"<= {target['max']}" if "max" in target else f">= {target['min']}"
        shown = target["value"]
        mark = {True: "[green]met[/]", False: "[red]NOT met[/]", None: "-"}[target["met"]]
        notes.append(f"target {name}: {shown} ({bound}) {mark}")
    return notes


# -- command line --------------------------------------------------------------------------------


def parse() -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=None, help="default 1,000,000; --quick 20,000"
    )
    parser.add_argument("--small", type=int, default=1000, help="events of the small store")
    parser.add_argument("--read-rounds", type=int, default=None, help="default 3; --quick 1")
    parser.add_argument("--nth-reads", type=int, default=None, help="default 2000; --quick 500")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured Nth reads first")
    parser.add_argument("--opens", type=int, default=None, help="default 21; --quick 7")
    parser.add_argument("--load-batch", type=int, default=1000, help="events per loading commit")
    parser.add_argument("--peer-page", type=int, default=1000, help="peer's read-all page size")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    check_store_url(parser, args.store_url)
    quick = args.quick
    args.events = args.events or (20_000 if quick else 1_000_000)
    args.read_rounds = args.read_rounds or (1 if quick else 3)
    args.nth_reads = args.nth_reads or (500 if quick else 2000)
    args.opens = args.opens or (7 if quick else 21)
    if args.events < args.small:
        parser.error(f"--events ({args.events}) must be at least --small ({args.small})")
    return args


def main() -> None:
    args = parse()
    if args.child:
        print(json.dumps(child_read_all(json.loads(args.child))))
        return
    scratch = Scratch.create(args.dir, "read", args.keep)
    run = Run(args, scratch, (args.small, args.events))
    try:
        with Steps() as progress:
            build(run, progress)
            reads = read_all_rounds(run, progress)
            points = point_reads_and_opens(run, progress)
        report(run, reads, points)
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
