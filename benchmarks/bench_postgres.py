"""PostgreSQL: eventbook's postgresql:// store beside the peer on one throwaway server, in one run.

Scenarios (both engines durable: the server runs fsync=on, synchronous_commit=on):
  w1    1 writer, 1 event per commit
  w8    8 writer threads, each on its own stream / aggregate, 1 event per commit (and the
        p50/p99 latency of a commit as its caller sees it)
  b100  1 writer, 100 events per commit
  read  read-all of a log of N events (default 200,000), decoded, in this process: as loaded
        (no planner statistics yet; the target) and after ANALYZE
One server (`eventbook.testing.postgres_server`: initdb in a temporary directory, a free
loopback port) serves both engines; every measurement gets a fresh schema, dropped after it.
Each round runs every engine of every scenario once, in a rotating order; rates are the median
over rounds and latencies are pooled. Prints the tables, then one JSON line with the ratios the
issue sets targets for.

    python benchmarks/bench_postgres.py            # full run, a few minutes
    python benchmarks/bench_postgres.py --quick    # CI-sized
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

import eventbook as eb
import ours
import peer
import peer_postgres
from bench_append import Result, Scenario, measure
from common import (
    WORK_TREE,
    Scratch,
    Steps,
    base_parser,
    check_store_url,
    emit_json,
    environment,
    err,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    median,
    print_notes,
    print_table,
    ratio,
    verdict,
)
from eventbook.testing.postgres_server import PostgresServer, postgres_server

OURS = ours.LABEL
PEER = peer_postgres.LABEL
PEER_RECORDER = peer_postgres.RECORDER_LABEL
PEER_RAW = "eventsourcing (recorder, not decoded)"
SLUGS = {OURS: "ours", PEER: "peer_app", PEER_RECORDER: "peer_rec", PEER_RAW: "peer_raw"}
ENGINES = (OURS, PEER, PEER_RECORDER)
READERS = (OURS, PEER, PEER_RAW)
AS_LOADED = "as loaded"  # read-all right after the load: no planner statistics yet
ANALYZED = "analyzed"  # read-all again after ANALYZE of both tables
READ_STATES = (AS_LOADED, ANALYZED)
MARK = {True: "[green]met[/]", False: "[red]NOT met[/]", None: "-"}

Appender = Callable[[int], None]


@dataclass
class Run:
    args: argparse.Namespace
    server: PostgresServer
    disk: dict[str, Any]
    peer_settings: dict[str, Any] | None = None
    loads: dict[str, float] = field(default_factory=dict)  # events/s while loading (context)
    autoanalyzed: list[str] = field(default_factory=list)  # tables autovacuum analyzed early

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ours_url(self) -> str:
        return self.args.store_url or self.server.url


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    writers = args.writers
    return [
        Scenario("w1", "1 writer, 1 event/commit", 1, args.commits, 1, ENGINES),
        Scenario(
            "w8",
            f"{writers} writers, 1 event/commit",
            writers,
            max(1, 2 * args.commits // writers),
            1,
            ENGINES,
        ),
        Scenario("b100", "1 writer, 100 events/commit", 1, args.batches, 100, ENGINES),
    ]


# -- the engines ---------------------------------------------------------------------------------


def ours_appender(store: eb.EventStore, writer: int) -> Appender:
    """`count` Deposited events on this writer's stream per commit, at its exact expected
    version (as the peer's save checks its aggregate's version)."""
    stream = f"account-{writer}"
    version = 0

    def append(count: int) -> None:
        nonlocal version
        store.append(
            [eb.NewEvent(stream, "Deposited", {"amount": n}) for n in range(count)],
            expected={stream: version or eb.NO_STREAM},
        )
        version += count

    return append


@contextmanager
def open_ours(run: Run, schema: str) -> Iterator[eb.EventStore]:
    """eventbook on a fresh schema of the server (its defaults: a pool of up to 16)."""
    if ours.is_memory(run.ours_url):
        store = ours.open_ours(run.ours_url)
    else:
        store = eb.open_store(run.ours_url, schema=schema)
    try:
        yield store
    finally:
        store.close()
        if not ours.is_memory(run.ours_url):
            peer_postgres.drop_schema(run.url, schema)


@contextmanager
def open_peer(run: Run, schema: str) -> Iterator[peer.BenchApp]:
    app = peer_postgres.open_app(run.url, schema)
    if run.peer_settings is None:
        run.peer_settings = peer_postgres.settings(app, run.url)
    try:
        yield app
    finally:
        app.close()
        peer_postgres.drop_schema(run.url, schema)


@contextmanager
def opened(subject: str, run: Run, tag: str) -> Iterator[Callable[[int], Appender]]:
    """A fresh schema of `subject` for one measurement; yields writer index -> appender (one
    appender per writer, made once: the warm-up and the measurement share it)."""
    made: dict[int, Appender] = {}
    schema = f"bench_{tag}"
    if subject == OURS:
        with open_ours(run, schema) as store:
            yield lambda w: made.setdefault(w, ours_appender(store, w))
    else:
        make = peer.app_appender if subject == PEER else peer.recorder_appender
        with open_peer(run, schema) as app:
            yield lambda w: made.setdefault(w, make(app))


def measure_warm(factory: Callable[[int], Appender], scenario: Scenario, warmup: int) -> Any:
    """`warmup` unmeasured commits per writer, the writers running together (so each engine's
    pool has grown to the writers' number before the clock starts), then the measurement."""
    if warmup:
        measure(factory, dataclasses.replace(scenario, commits=warmup), 0)
    gc.collect()
    return measure(factory, scenario, 0)


def run_appends(run: Run, plan: list[Scenario], progress: Steps) -> dict[tuple[str, str], Result]:
    rounds = run.args.rounds
    results: dict[tuple[str, str], Result] = {}
    task = progress.task("appends", rounds * sum(len(s.subjects) for s in plan))
    for round_index in range(rounds):
        for scenario in plan:
            shift = round_index % len(scenario.subjects)
            order = scenario.subjects[shift:] + scenario.subjects[:shift]
            for subject in order:
                tag = f"{scenario.key}_{SLUGS[subject]}_r{round_index}"
                with opened(subject, run, tag) as factory:
                    timing = measure_warm(factory, scenario, run.args.warmup)
                result = results.setdefault((scenario.key, subject), Result())
                rate = scenario.events / timing.wall_seconds
                result.rates.append(rate)
                result.timing.merge(timing)
                progress.note(
                    f"round {round_index + 1}/{rounds}  {scenario.title:<28} "
                    f"{subject:<28} {rate:>12,.0f} events/s"
                )
                progress.advance(task, force=True)
    return results


# -- read-all ------------------------------------------------------------------------------------


def read_all_rounds(run: Run, progress: Steps) -> dict[tuple[str, str], list[float]]:
    """Load both engines' logs (N events each, streams / aggregates of 100 events, 1,000 per
    commit), then read each whole log `--read-rounds` times, engines in a rotating order: first
    as loaded (the tables have no planner statistics yet: autovacuum is held off them until
    then, or it may analyze them in the middle of a round), then again after `ANALYZE` (what
    autovacuum gives a table a while after such a load). Rates by (state, engine)."""
    args = run.args
    events = args.events
    with (
        open_ours(run, "bench_read_ours") as store,
        open_peer(run, "bench_read_peer") as app,
    ):
        tables = [peer_postgres.events_table(app)]
        if not ours.is_memory(run.ours_url):
            tables.append(f"{store.schema}.events")  # type: ignore[attr-defined]
        peer_postgres.set_autovacuum(run.url, tables, enabled=False)
        task = progress.task("loading both logs", 2 * events)
        started = time.perf_counter()
        ours.load(store, events, args.load_batch, lambda n: progress.advance(task, n))
        run.loads[OURS] = events / (time.perf_counter() - started)
        started = time.perf_counter()
        peer.load(app, events, args.load_batch, lambda n: progress.advance(task, n))
        run.loads[PEER] = events / (time.perf_counter() - started)
        progress.advance(task, 0, force=True)

        readers: dict[str, Callable[[], Iterator[Any]]] = {
            OURS: store.read_all,
            PEER: lambda: peer.read_all(app, args.peer_page),
            PEER_RAW: lambda: peer.read_all_raw(app, args.peer_page),
        }
        rates: dict[tuple[str, str], list[float]] = {}
        task = progress.task("read-all", len(READ_STATES) * args.read_rounds * len(READERS))
        for state in READ_STATES:
            if state == ANALYZED:
                run.autoanalyzed = autoanalyzed(run.url)  # none expected: it was held off
                peer_postgres.analyze(run.url)
                peer_postgres.set_autovacuum(run.url, tables, enabled=True)
            for round_index in range(args.read_rounds):
                shift = round_index % len(READERS)
                for engine in READERS[shift:] + READERS[:shift]:
                    gc.collect()
                    count = 0
                    started = time.perf_counter()
                    for _ in readers[engine]():
                        count += 1
                    seconds = time.perf_counter() - started
                    if count != events:
                        raise RuntimeError(f"{engine} read {count:,} events, not {events:,}")
                    rate = events / seconds
                    rates.setdefault((state, engine), []).append(rate)
                    progress.note(
                        f"round {round_index + 1}/{args.read_rounds}  read-all, {state:<11} "
                        f"{engine:<38} {rate:>12,.0f} events/s"
                    )
                    progress.advance(task, force=True)
    return rates


def autoanalyzed(url: str) -> list[str]:
    """The read-all tables autovacuum (or anything) analyzed already (changing their plans)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || relname FROM pg_stat_user_tables "
            "WHERE schemaname LIKE 'bench_read_%' "
            "AND (last_autoanalyze IS NOT NULL OR last_analyze IS NOT NULL)"
        ).fetchall()
    return [r[0] for r in rows]


# -- report --------------------------------------------------------------------------------------


def report(
    run: Run, plan: list[Scenario], appends: dict, reads: dict[tuple[str, str], list[float]]
) -> None:
    args = run.args

    def rate(key: str, subject: str) -> float:
        return appends[(key, subject)].events_per_s

    def quantile(key: str, subject: str, q: float) -> float:
        return appends[(key, subject)].timing.quantile_ms(q)

    def read_rate(engine: str, state: str = AS_LOADED) -> float:
        return median(reads[(state, engine)])

    rows = []
    for scenario in plan:
        for subject in scenario.subjects:
            result = appends[(scenario.key, subject)]
            rows.append(
                [
                    scenario.title,
                    subject,
                    fmt_rate(result.events_per_s),
                    fmt_rate(result.events_per_s / scenario.events_per_commit),
                    fmt_ms(result.timing.quantile_ms(0.5)),
                    fmt_ms(result.timing.quantile_ms(0.99)),
                    fmt_ratio(ratio(result.events_per_s, rate(scenario.key, PEER))),
                ]
            )
    columns = ["scenario", "engine", "events/s", "commits/s", "p50 ms", "p99 ms", "÷ peer"]
    print_table(
        f"Durable appends on PostgreSQL: median of {args.rounds} round(s); latency per commit",
        columns,
        rows,
    )
    rows = [
        [
            f"read-all of {args.events:,} events, {state}",
            engine,
            fmt_rate(read_rate(engine, state)),
            fmt_ratio(ratio(read_rate(engine, state), read_rate(PEER, state))),
        ]
        for state in READ_STATES
        for engine in READERS
    ]
    print_table(
        f"Read-all on PostgreSQL, in-process: median of {args.read_rounds} round(s); "
        f"'{AS_LOADED}': right after the load, no planner statistics; '{ANALYZED}': after ANALYZE",
        ["measure", "engine", "events/s", "÷ peer"],
        rows,
    )

    w8 = "w8"
    ratios = {
        "w1_ours_over_peer": ratio(rate("w1", OURS), rate("w1", PEER)),
        "w8_ours_over_peer": ratio(rate(w8, OURS), rate(w8, PEER)),
        "b100_ours_over_peer": ratio(rate("b100", OURS), rate("b100", PEER)),
        "read_all_ours_over_peer": ratio(read_rate(OURS), read_rate(PEER)),
        "w8_p50_peer_over_ours": ratio(quantile(w8, PEER, 0.5), quantile(w8, OURS, 0.5)),
        "w8_p99_peer_over_ours": ratio(quantile(w8, PEER, 0.99), quantile(w8, OURS, 0.99)),
        "w8_ours_p50_ms": round(quantile(w8, OURS, 0.5), 4),
        "w8_ours_p99_ms": round(quantile(w8, OURS, 0.99), 4),
        "w8_peer_p50_ms": round(quantile(w8, PEER, 0.5), 4),
        "w8_peer_p99_ms": round(quantile(w8, PEER, 0.99), 4),
        "w8_ours_over_w1_ours": ratio(rate(w8, OURS), rate("w1", OURS)),
        "w8_peer_over_w1_peer": ratio(rate(w8, PEER), rate("w1", PEER)),
        "w1_ours_over_peer_recorder": ratio(rate("w1", OURS), rate("w1", PEER_RECORDER)),
        "w8_ours_over_peer_recorder": ratio(rate(w8, OURS), rate(w8, PEER_RECORDER)),
        "b100_ours_over_peer_recorder": ratio(rate("b100", OURS), rate("b100", PEER_RECORDER)),
        "read_all_ours_over_peer_raw": ratio(read_rate(OURS), read_rate(PEER_RAW)),
        "read_all_analyzed_ours_over_peer": ratio(
            read_rate(OURS, ANALYZED), read_rate(PEER, ANALYZED)
        ),
        "read_all_analyzed_ours_over_peer_raw": ratio(
            read_rate(OURS, ANALYZED), read_rate(PEER_RAW, ANALYZED)
        ),
        "read_all_ours_analyzed_over_as_loaded": ratio(read_rate(OURS, ANALYZED), read_rate(OURS)),
    }
    targets = {
        "w1_ours_over_peer": verdict(ratios["w1_ours_over_peer"], 1.0),
        "w8_ours_over_peer": verdict(ratios["w8_ours_over_peer"], 2.0),
        "b100_ours_over_peer": verdict(ratios["b100_ours_over_peer"], 2.0),
        "read_all_ours_over_peer": verdict(ratios["read_all_ours_over_peer"], 2.0),
    }
    print_notes(notes_for(run, targets, ratios))
    figures: dict[str, Any] = {
        f"{key}/{subject}": {
            "events_per_s": round(result.events_per_s, 1),
            "rounds_events_per_s": [round(r, 1) for r in result.rates],
            "p50_ms": round(result.timing.quantile_ms(0.5), 4),
            "p99_ms": round(result.timing.quantile_ms(0.99), 4),
        }
        for (key, subject), result in appends.items()
    }
    for (state, engine), rates in reads.items():
        figures[f"read_all/{state}/{engine}"] = {
            "events_per_s": round(median(rates), 1),
            "rounds_events_per_s": [round(r, 1) for r in rates],
        }
    figures["load_events_per_s"] = {k: round(v) for k, v in run.loads.items()}
    result = {
        "benchmark": "postgres",
        "ratios": ratios,
        "targets": targets,
        "figures": figures,
        "peer": {
            **(run.peer_settings or {}),
            "ratios_use": PEER,
            "context": [PEER_RECORDER, PEER_RAW],
            "read_all": f"recorder.select_notifications(start, limit={args.peer_page}, "
            "inclusive_of_start=False) in pages, then app.mapper.to_domain_event(n)",
        },
        "read_all_analyzed_before_analyze": run.autoanalyzed,
        "server": server_info(run),
        "config": config(run, plan),
        "disk": run.disk,
        "environment": environment(),
    }
    emit_json(result, "bench_postgres", args.json_out)


def notes_for(run: Run, targets: dict[str, dict[str, Any]], ratios: dict[str, Any]) -> list[str]:
    s = run.peer_settings or {}
    server = s.get("server", {})
    load = ", ".join(f"{k} {v:,.0f}/s" for k, v in run.loads.items())
    notes = [
        f"server: PostgreSQL {server.get('server_version')} (throwaway, loopback TCP), fsync="
        f"{server.get('fsync')}, synchronous_commit={server.get('synchronous_commit')}, "
        f"wal_sync_method={server.get('wal_sync_method')}; data on "
        f"{run.disk['device']}.",
        f"peer: {s.get('library')} (PERSISTENCE_MODULE=eventsourcing.postgres, pool "
        f"{s.get('pool_min_size')}..{s.get('pool_max_size')}); ratios use {PEER} (an Aggregate "
        f"saved per commit); {PEER_RECORDER} (insert_events of StoredEvents) is context. Each "
        "insert takes an EXCLUSIVE lock on the events table until it commits.",
        f"eventbook: open_store(url, schema=...) (pool up to 16), store.append([...], "
        f"expected={{stream: version}}); read-all: store.read_all() (pages of 4,096). The peer's "
        f"read-all: select_notifications in pages of {run.args.peer_page} + "
        "mapper.to_domain_event.",
        f"latency at {run.args.writers} writers, p50 / p99 ms: eventbook "
        f"{ratios['w8_ours_p50_ms']:.3f} / {ratios['w8_ours_p99_ms']:.3f}, the peer "
        f"{ratios['w8_peer_p50_ms']:.3f} / {ratios['w8_peer_p99_ms']:.3f}.",
        f"load (context, not a target; 1,000 events per commit): {load}",
        f"read-all '{AS_LOADED}' (the target) reads tables with no planner statistics yet, as "
        "right after a load (autovacuum held off both tables until then); "
        f"'{ANALYZED}' after ANALYZE of both (what autovacuum does a while later): eventbook "
        f"{fmt_ratio(ratios['read_all_ours_analyzed_over_as_loaded'])} its as-loaded rate, "
        f"{fmt_ratio(ratios['read_all_analyzed_ours_over_peer'])} the peer's."
        + (
            f" [yellow]{', '.join(run.autoanalyzed)} had statistics before the ANALYZE[/]"
            if run.autoanalyzed
            else ""
        ),
    ]
    if run.args.store_url:
        notes.append(
            f"[yellow]eventbook ran on {run.args.store_url}: a harness check, not a measurement"
        )
    for name, target in targets.items():
        notes.append(
            f"target {name}: {fmt_ratio(target['value'])} (>= {target['min']}) "
            f"{MARK[target['met']]}"
        )
    return notes


def server_info(run: Run) -> dict[str, Any]:
    return {
        "url": run.url,
        "data_dir": str(run.server.data),
        "settings_given": run.server.settings,
        "settings_seen": (run.peer_settings or {}).get("server", {}),
    }


def server_disk(server: PostgresServer) -> dict[str, Any]:
    """Where the server's files are (the disk its fsyncs go to)."""
    same = os.stat(server.folder).st_dev == os.stat(WORK_TREE).st_dev
    return Scratch(Path(server.folder), same).describe()


def config(run: Run, plan: list[Scenario]) -> dict[str, Any]:
    args = run.args
    return {
        "store": args.store_url or "postgresql:// on the throwaway server, a schema per run",
        "quick": args.quick,
        "rounds": args.rounds,
        "warmup_commits": args.warmup,
        "scenarios": {
            s.key: {
                "writers": s.writers,
                "commits_per_writer": s.commits,
                "events_per_commit": s.events_per_commit,
            }
            for s in plan
        },
        "read_events": args.events,
        "read_rounds": args.read_rounds,
        "load_batch": args.load_batch,
        "peer_page": args.peer_page,
    }


# -- command line --------------------------------------------------------------------------------


def parse() -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--commits",
        type=int,
        default=None,
        help="commits of the 1-writer run (default 2000; --quick 200); the writers of w8 "
        "share twice as many",
    )
    parser.add_argument(
        "--batches", type=int, default=None, help="commits of 100 events (default 300; --quick 20)"
    )
    parser.add_argument("--writers", type=int, default=8, help="writer threads of w8")
    parser.add_argument("--rounds", type=int, default=None, help="default 3; --quick 1")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="unmeasured commits per writer first (default 20; --quick 5)",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help="events read by read-all (default 200,000; --quick 10,000)",
    )
    parser.add_argument("--read-rounds", type=int, default=None, help="default 3; --quick 1")
    parser.add_argument("--load-batch", type=int, default=1000, help="events per loading commit")
    parser.add_argument("--peer-page", type=int, default=1000, help="peer's read-all page size")
    args = parser.parse_args()
    check_store_url(parser, args.store_url)
    quick = args.quick
    args.commits = args.commits or (200 if quick else 2000)
    args.batches = args.batches or (20 if quick else 300)
    args.rounds = args.rounds or (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if quick else 20)
    args.events = args.events or (10_000 if quick else 200_000)
    args.read_rounds = args.read_rounds or (1 if quick else 3)
    return args


def main() -> None:
    args = parse()
    if args.dir is not None:
        err.print(
            f"[yellow]note:[/] --dir {args.dir} is not used: the server keeps its files where "
            "eventbook.testing.postgres_server puts them (a fresh directory under $TMPDIR)"
        )
    with Steps() as progress:
        progress.note("starting a throwaway PostgreSQL server (initdb, a free loopback port)")
        with postgres_server() as server:
            run = Run(args, server, disk=server_disk(server))
            plan = scenarios(args)
            appends = run_appends(run, plan, progress)
            reads = read_all_rounds(run, progress)
    report(run, plan, appends, reads)


if __name__ == "__main__":
    main()
