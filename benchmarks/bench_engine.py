"""The command engine beside the peer: loading a long stream, the time machine, commands/s.

  load        the state of one stream of N events (default 100,000) on a fresh eventbook
              Engine / the peer's repository: from the latest snapshot (one every 100 events),
              and by replaying every event (no snapshots)
  at-version  the state at random versions of that stream (the time machine; the same
              versions for both engines), from the nearest snapshot at or before them
  commands    bank Deposit commands/s, durable, one thread; and 8 threads on 8 accounts (ours:
              group commit; the peer's figure is context)
Both streams are written first: eventbook through its Engine, one bank command per event
(OpenAccount, then Deposits) on a store opened with sync="none" (a bulk load), saving a
snapshot every 100 events; the peer as one Account aggregate, 100 events per save, with
`snapshotting_intervals = {Account: 100}`. Every file is under one scratch directory (one
disk). Prints a table, then one JSON line with the ratios the issue sets targets for.

    python benchmarks/bench_engine.py            # 100,000 events, 5,000 commands
    python benchmarks/bench_engine.py --quick    # CI-sized
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass, field
from typing import Any

import eventbook as eb
import ours
import peer
from bench_append import Result, Scenario, measure
from bench_read import time_interleaved
from common import (
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
    print_notes,
    print_table,
    ratio,
    verdict,
)

OURS = ours.LABEL
PEER = peer.LABEL
ACCOUNT = "x"  # ours: stream account-x
MARK = {True: "[green]met[/]", False: "[red]NOT met[/]", None: "-"}


@dataclass
class Run:
    args: argparse.Namespace
    scratch: Scratch
    ours_location: str = ""
    ours_store: Any = None  # the store read by the load and at-version measurements
    peer_db: str = ""
    peer_id: Any = None  # the peer's Account id
    peer_settings: dict[str, Any] = field(default_factory=dict)
    loads: dict[str, float] = field(default_factory=dict)  # engine -> events/s written


# -- writing the stream --------------------------------------------------------------------------


def build(run: Run, progress: Steps) -> None:
    args = run.args
    events = args.events
    run.ours_location = args.store_url or str(run.scratch.path("ours-stream"))
    task = progress.task(f"write {OURS} ({events * (1 + args.interleave):,} commands)", events)
    started = time.perf_counter()
    store = ours.open_ours(run.ours_location, sync="none")  # a bulk load: no fdatasync per commit
    engine = eb.Engine(ours.bank_app(args.snapshot_every), store)
    ours.load_account(engine, ACCOUNT, events, lambda n: progress.advance(task, n), args.interleave)
    progress.advance(task, 1, force=True)  # the OpenAccount
    run.loads[OURS] = events * (1 + args.interleave) / (time.perf_counter() - started)
    if ours.is_memory(run.ours_location):
        run.ours_store = store  # nothing to reopen
    else:
        store.close()  # reopened as a later process would open it: indexes flushed, no cache
        run.ours_store = ours.open_ours(run.ours_location)

    run.peer_db = str(run.scratch.path("peer-stream.sqlite"))
    task = progress.task(f"write {PEER} ({events:,} events)", events)
    started = time.perf_counter()
    app = peer.open_app(run.peer_db, args.snapshot_every)
    run.peer_id = peer.load_account(
        app, events, args.peer_batch, lambda n: progress.advance(task, n), args.interleave
    )
    run.peer_settings = peer.settings(app)
    app.close()
    run.loads[PEER] = events * (1 + args.interleave) / (time.perf_counter() - started)
    progress.note(
        f"written: {OURS} {run.loads[OURS]:,.0f} commands/s (sync=none), "
        f"{PEER} {run.loads[PEER]:,.0f} events/s ({args.peer_batch} per save)"
    )


# -- loading the stream and the time machine -----------------------------------------------------


def ours_loader(run: Run, use_snapshots: bool) -> Any:
    """A fresh Engine (no cache) for each load, over the open store."""
    app = ours.bank_app(run.args.snapshot_every)
    store = run.ours_store
    stream = ours.account_stream(ACCOUNT)

    def load(_i: int) -> eb.Folded:
        return eb.Engine(app, store).state(stream, use_snapshots=use_snapshots)

    return load


def ours_at_version(run: Run, versions: list[int]) -> Any:
    app = ours.bank_app(run.args.snapshot_every)
    store = run.ours_store
    stream = ours.account_stream(ACCOUNT)

    def load(i: int) -> eb.Folded:
        return eb.Engine(app, store).state(stream, eb.Target(at_version=versions[i]))

    return load


def check_ours(folded: eb.Folded, version: int) -> None:
    if folded.version != version or folded.state.balance != version - 1:
        raise RuntimeError(
            f"{OURS}: asked for version {version:,}, got version {folded.version:,} with "
            f"balance {folded.state.balance:,}"
        )


def check_peer(account: Any, version: int) -> None:
    if account.version != version or account.balance != version - 1:
        raise RuntimeError(
            f"{PEER}: asked for version {version:,}, got version {account.version:,} with "
            f"balance {account.balance:,}"
        )


def loads_and_versions(run: Run, progress: Steps) -> dict[str, Timing]:
    """Every figure of the stream: loads with and without snapshots, states at versions.
    Ours and the peer are called in turn (one call of each per round), after unmeasured calls
    that also check the state each returns."""
    args = run.args
    events = args.events
    with_snapshots = peer.open_app(run.peer_db, args.snapshot_every)
    without = peer.open_app(run.peer_db)  # the same database, its snapshots unread
    get, get_replaying = with_snapshots.repository.get, without.repository.get
    peer_id = run.peer_id
    rng = random.Random(f"{args.seed}-versions")
    versions = [rng.randint(1, events) for _ in range(args.versions + args.warmup)]
    plans = {
        "load_snapshot": (
            ours_loader(run, True),
            lambda _i: get(peer_id),
            args.snapshot_loads,
        ),
        "load_replay": (
            ours_loader(run, False),
            lambda _i: get_replaying(peer_id),
            args.replays,
        ),
        "at_version": (
            ours_at_version(run, versions),
            lambda i: get(peer_id, version=versions[i]),
            args.versions,
        ),
    }
    results: dict[str, Timing] = {}
    try:
        for name, (ours_call, peer_call, count) in plans.items():
            task = progress.task(name.replace("_", " "), 2 * count)
            warm = args.warmup if name != "load_replay" else 1
            for i in range(warm):  # unmeasured; each state is checked
                want = versions[args.versions + i] if name == "at_version" else events
                index = args.versions + i if name == "at_version" else i
                check_ours(ours_call(index), want)
                check_peer(peer_call(index), want)
            # in blocks, so the bar moves between timed calls without a thread of its own
            block = max(1, min(count, 50 if name != "load_replay" else 1))
            ours_timing, peer_timing = Timing(), Timing()
            for start in range(0, count, block):
                size = min(block, count - start)
                timed = time_interleaved(
                    [
                        lambda i, c=ours_call, at=start: c(at + i),
                        lambda i, c=peer_call, at=start: c(at + i),
                    ],
                    size,
                )
                ours_timing.merge(timed[0])
                peer_timing.merge(timed[1])
                progress.advance(task, 2 * size)
            results[f"{name}/{OURS}"] = ours_timing
            results[f"{name}/{PEER}"] = peer_timing
            progress.note(
                f"{name:<14} {OURS} p50 {fmt_duration(ours_timing.quantile_ms(0.5) / 1e3)}, "
                f"{PEER} p50 {fmt_duration(peer_timing.quantile_ms(0.5) / 1e3)}"
            )
    finally:
        with_snapshots.close()
        without.close()
    return results


# -- commands/s ----------------------------------------------------------------------------------


def command_scenarios(args: argparse.Namespace) -> list[tuple[str, Scenario]]:
    """(engine, scenario): one thread on one account; `--writers` threads on as many accounts
    sharing twice as many commands (as bench_append's w8)."""
    w1 = Scenario("c1", "1 thread", 1, args.commands, 1, ())
    writers = args.writers
    wn = Scenario(
        "c8",
        f"{writers} threads, {writers} accounts",
        writers,
        max(1, 2 * args.commands // writers),
        1,
        (),
    )
    return [(OURS, w1), (PEER, w1), (OURS, wn), (PEER, wn)]


def run_commands(run: Run, scenario: Scenario, engine: str, tag: str) -> Timing:
    """A fresh durable store / database; each writer opens its account, makes `--warmup`
    unmeasured commands, then all are released together and every command is timed."""
    args = run.args
    warmup = args.command_warmup
    if engine == OURS:
        location = args.store_url or str(run.scratch.path(tag))
        store = ours.open_ours(location)  # durable: fdatasync before each commit is acknowledged
        try:
            command_engine = eb.Engine(ours.bank_app(args.snapshot_every), store)
            return measure(lambda w: ours.depositor(command_engine, w), scenario, warmup)
        finally:
            store.close()
            if not ours.is_memory(location):
                run.scratch.remove(tag)
    app = peer.open_app(run.scratch.path(f"{tag}.sqlite"), args.snapshot_every)
    try:
        return measure(lambda _w: peer.app_appender(app), scenario, warmup)
    finally:
        app.close()
        run.scratch.remove(f"{tag}.sqlite")


def commands(run: Run, progress: Steps) -> dict[str, Result]:
    """Each scenario of each engine once per round, in an order rotating between rounds; a
    Result's events/s are commands/s here (one event per command)."""
    plan = command_scenarios(run.args)
    rounds = run.args.rounds
    results: dict[str, Result] = {}
    task = progress.task("commands", rounds * len(plan))
    for round_index in range(rounds):
        shift = round_index % len(plan)
        for engine, scenario in plan[shift:] + plan[:shift]:
            slug = "ours" if engine == OURS else "peer"
            timing = run_commands(run, scenario, engine, f"{scenario.key}-{slug}-r{round_index}")
            rate = scenario.events / timing.wall_seconds
            result = results.setdefault(f"{scenario.key}/{engine}", Result())
            result.rates.append(rate)
            result.timing.merge(timing)
            progress.note(
                f"round {round_index + 1}/{rounds}  commands {scenario.title:<22} {engine:<28} "
                f"{rate:>10,.0f} commands/s"
            )
            progress.advance(task, force=True)
    return results


# -- report --------------------------------------------------------------------------------------


def report(run: Run, stream: dict[str, Timing], rates: dict[str, Result]) -> None:
    args = run.args

    def p(name: str, engine: str, q: float = 0.5) -> float:
        return stream[f"{name}/{engine}"].quantile_ms(q)

    def per_s(key: str, engine: str) -> float:
        return rates[f"{key}/{engine}"].events_per_s

    ratios = {
        "load_snapshot_ours_over_peer": ratio(p("load_snapshot", PEER), p("load_snapshot", OURS)),
        "load_replay_ours_over_peer": ratio(p("load_replay", PEER), p("load_replay", OURS)),
        "at_version_ours_p50_ms": round(p("at_version", OURS), 4),
        "commands_ours_over_peer": ratio(per_s("c1", OURS), per_s("c1", PEER)),
        "at_version_ours_p99_ms": round(p("at_version", OURS, 0.99), 4),
        "at_version_ours_over_peer_p50": ratio(p("at_version", PEER), p("at_version", OURS)),
        "commands_c8_ours_over_c1_ours": ratio(per_s("c8", OURS), per_s("c1", OURS)),
        "commands_c8_ours_over_peer": ratio(per_s("c8", OURS), per_s("c8", PEER)),
    }
    targets = {
        "load_snapshot_ours_over_peer": verdict(ratios["load_snapshot_ours_over_peer"], 2.0),
        "load_replay_ours_over_peer": verdict(ratios["load_replay_ours_over_peer"], 2.0),
        "at_version_ours_p50_ms": verdict(ratios["at_version_ours_p50_ms"], 5.0, at_most=True),
        "commands_ours_over_peer": verdict(ratios["commands_ours_over_peer"], 2.0),
    }
    table(run, stream, rates, ratios, targets)
    print_notes(notes_for(run, ratios, targets))
    figures: dict[str, Any] = {"write_per_s": {k: round(v) for k, v in run.loads.items()}}
    for key, timing in stream.items():
        figures[key] = {
            "p50_ms": round(timing.quantile_ms(0.5), 4),
            "p99_ms": round(timing.quantile_ms(0.99), 4),
            "count": len(timing.latencies),
        }
    for key, result in rates.items():
        figures[f"commands/{key}"] = {
            "commands_per_s": round(result.events_per_s, 1),
            "rounds_commands_per_s": [round(r, 1) for r in result.rates],
            "p50_ms": round(result.timing.quantile_ms(0.5), 4),
            "p99_ms": round(result.timing.quantile_ms(0.99), 4),
        }
    result = {
        "benchmark": "engine",
        "events": args.events,
        "ratios": ratios,
        "targets": targets,
        "figures": figures,
        "peer": {**run.peer_settings, "ratios_use": PEER},
        "config": {
            "store": args.store_url or "embedded log (path under --dir)",
            "quick": args.quick,
            "events": args.events,
            "snapshot_every": args.snapshot_every,
            "snapshot_loads": args.snapshot_loads,
            "replays": args.replays,
            "versions": args.versions,
            "warmup": args.warmup,
            "commands": args.commands,
            "writers": args.writers,
            "rounds": args.rounds,
            "command_warmup": args.command_warmup,
            "peer_batch": args.peer_batch,
            "interleave": args.interleave,
            "seed": args.seed,
        },
        "disk": run.scratch.describe(),
        "environment": environment(),
    }
    emit_json(result, "bench_engine", args.json_out)


def table(
    run: Run,
    stream: dict[str, Timing],
    rates: dict[str, Result],
    ratios: dict[str, Any],
    targets: dict[str, dict[str, Any]],
) -> None:
    args = run.args
    events = f"{args.events:,}"
    if args.interleave:
        events += f" (1:{args.interleave} interleaved)"

    def ms(name: str, engine: str, q: float = 0.5) -> str:
        return fmt_duration(stream[f"{name}/{engine}"].quantile_ms(q) / 1e3)

    def target(key: str, bound: str) -> list[str]:
        return [bound, MARK[targets[key]["met"]]]

    writers = args.writers
    rows = [
        [
            f"load {events} events, snapshot every {args.snapshot_every} (p50)",
            ms("load_snapshot", OURS),
            ms("load_snapshot", PEER),
            fmt_ratio(ratios["load_snapshot_ours_over_peer"]),
            *target("load_snapshot_ours_over_peer", "≥ 2x"),
        ],
        [
            f"load {events} events, no snapshots (p50)",
            ms("load_replay", OURS),
            ms("load_replay", PEER),
            fmt_ratio(ratios["load_replay_ours_over_peer"]),
            *target("load_replay_ours_over_peer", "≥ 2x"),
        ],
        [
            "state at a random version (p50)",
            ms("at_version", OURS),
            ms("at_version", PEER),
            fmt_ratio(ratios["at_version_ours_over_peer_p50"]),
            *target("at_version_ours_p50_ms", "ours ≤ 5 ms"),
        ],
        [
            "state at a random version (p99)",
            ms("at_version", OURS, 0.99),
            ms("at_version", PEER, 0.99),
            fmt_ratio(
                ratio(
                    stream[f"at_version/{PEER}"].quantile_ms(0.99),
                    stream[f"at_version/{OURS}"].quantile_ms(0.99),
                )
            ),
            "-",
            "-",
        ],
        [
            "Deposit commands/s, durable, 1 thread",
            fmt_rate(rates[f"c1/{OURS}"].events_per_s),
            fmt_rate(rates[f"c1/{PEER}"].events_per_s),
            fmt_ratio(ratios["commands_ours_over_peer"]),
            *target("commands_ours_over_peer", "≥ 2x"),
        ],
        [
            f"Deposit commands/s, durable, {writers} threads on {writers} accounts "
            "(ours: group commit)",
            fmt_rate(rates[f"c8/{OURS}"].events_per_s),
            fmt_rate(rates[f"c8/{PEER}"].events_per_s),
            fmt_ratio(ratios["commands_c8_ours_over_peer"]),
            "context",
            "-",
        ],
    ]
    print_table(
        f"Command engine: {OURS} beside {PEER} (ratio: how many times faster ours is)",
        ["measure", OURS, PEER, "ratio", "target", "met"],
        rows,
        text_columns=1,
    )


def notes_for(run: Run, ratios: dict[str, Any], targets: dict[str, dict[str, Any]]) -> list[str]:
    args = run.args
    s = run.peer_settings
    notes = [
        f"peer: {s.get('library')} on SQLite {s.get('sqlite')}, journal_mode="
        f"{s.get('journal_mode')}, synchronous={s.get('synchronous')} (durable, as in "
        "bench_append); an Application with snapshotting_intervals={Account: "
        f"{args.snapshot_every}}} (no snapshots: the same database read by an Application "
        "without them); repository.get(id) and repository.get(id, version=v); commands: "
        "account.deposit(1) then app.save(account), the aggregate kept in memory.",
        f"ours: eventbook.Engine(bank app, snapshot_every={args.snapshot_every}) over "
        "eb.open_store(dir) (durable by default); loads: a new Engine per call, "
        "engine.state('account-x'[, Target(at_version=v)][, use_snapshots=False]); "
        "commands: engine.execute(Deposit(account_id, 1)), one commit each.",
        f"stream written (context): {OURS} {run.loads[OURS]:,.0f} commands/s with sync=none; "
        f"{PEER} {run.loads[PEER]:,.0f} events/s, {args.peer_batch} events per save; "
        + (
            f"{args.interleave} event(s) of another account after each of the stream's."
            if args.interleave
            else "the stream's events are neighbours in the log (nothing interleaved)."
        ),
        f"commands: ours with {args.writers} threads ÷ ours with 1 thread: "
        f"{fmt_ratio(ratios['commands_c8_ours_over_c1_ours'])}.",
        f"disk: {run.scratch.describe()['device']}; page cache warm (just written).",
    ]
    if args.store_url:
        notes.append(
            f"[yellow]eventbook ran on {args.store_url}: a harness check, not a measurement"
        )
    for name, target in targets.items():
        bound = f"<= {target['max']}" if "max" in target else f">= {target['min']}"
        notes.append(f"target {name}: {target['value']} ({bound}) {MARK[target['met']]}")
    return notes


# -- command line --------------------------------------------------------------------------------


def parse() -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help="events of the stream (default 100,000; --quick 5,000)",
    )
    parser.add_argument(
        "--snapshot-every", type=int, default=100, help="both engines snapshot every N events"
    )
    parser.add_argument(
        "--snapshot-loads",
        type=int,
        default=None,
        help="loads from a snapshot (default 500; --quick 100)",
    )
    parser.add_argument(
        "--replays", type=int, default=None, help="loads without snapshots (default 5; --quick 3)"
    )
    parser.add_argument(
        "--versions",
        type=int,
        default=None,
        help="states at random versions (default 2000; --quick 300)",
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="unmeasured (checked) loads and states first"
    )
    parser.add_argument(
        "--commands",
        type=int,
        default=None,
        help="commands of the 1-thread run (default 5000; --quick 300); "
        "the threads of the multi-thread run share twice as many",
    )
    parser.add_argument(
        "--writers", type=int, default=8, help="threads (and accounts) of the multi-thread run"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds of the command runs (default 3; --quick 1)"
    )
    parser.add_argument(
        "--command-warmup",
        type=int,
        default=None,
        help="unmeasured commands per thread first (default 20; --quick 5)",
    )
    parser.add_argument(
        "--interleave",
        type=int,
        default=0,
        help="events of another account written after each event of the loaded stream "
        "(default 0: the stream's events are neighbours in the log)",
    )
    parser.add_argument(
        "--peer-batch", type=int, default=100, help="events per save when writing the peer's stream"
    )
    args = parser.parse_args()
    check_store_url(parser, args.store_url)
    quick = args.quick
    args.events = args.events or (5_000 if quick else 100_000)
    args.snapshot_loads = args.snapshot_loads or (100 if quick else 500)
    args.replays = args.replays or (3 if quick else 5)
    args.versions = args.versions or (300 if quick else 2000)
    args.commands = args.commands or (300 if quick else 5000)
    args.rounds = args.rounds or (1 if quick else 3)
    if args.command_warmup is None:
        args.command_warmup = 5 if quick else 20
    if args.events < 2 or args.snapshot_every < 1 or args.interleave < 0 or args.warmup < 1:
        parser.error(
            "--events must be at least 2, --snapshot-every and --warmup at least 1, "
            "--interleave at least 0"
        )
    return args


def main() -> None:
    args = parse()
    scratch = Scratch.create(args.dir, "engine", args.keep)
    run = Run(args, scratch)
    try:
        with Steps() as progress:
            build(run, progress)
            stream = loads_and_versions(run, progress)
            rates = commands(run, progress)
        if run.ours_store is not None:
            run.ours_store.close()
            run.ours_store = None
        report(run, stream, rates)
    finally:
        if run.ours_store is not None:
            run.ours_store.close()
        scratch.close()


if __name__ == "__main__":
    main()
