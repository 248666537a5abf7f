"""Durable appends: eventbook beside the peer and the disk's raw fdatasync rate, in one run.

Scenarios (every engine durable: nothing is acknowledged before it is on the disk):
  w1    1 writer, 1 event per commit        eventbook, peer, raw os.write(100 B) + os.fdatasync
                                            (appending; and over preallocated blocks, context)
  w8    8 writer threads, 1 event per commit (eventbook's group commit; the peer serialises)
  b100  1 writer, 100 events per commit
Every engine writes under the same scratch directory (one disk). Each round runs every engine
of every scenario once, in a rotating order; rates are the median over rounds and latencies are
pooled. Prints a table, then one JSON line with the ratios the issue sets targets for.

    python benchmarks/bench_append.py            # full run
    python benchmarks/bench_append.py --quick    # CI-sized
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import ours
import peer
from common import (
    Scratch,
    Steps,
    Timing,
    base_parser,
    check_store_url,
    emit_json,
    environment,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    median,
    print_notes,
    print_table,
    ratio,
    verdict,
)

RAW = "raw fdatasync"
RAW_PREALLOCATED = "raw fdatasync, preallocated"
RAW_PREALLOCATED_BYTES = 8 * 1024 * 1024
OURS = ours.LABEL
OURS_NO_SYNC = f"{ours.LABEL}, sync=none"
PEER = peer.LABEL
PEER_RECORDER = peer.RECORDER_LABEL
RAW_RECORD = b"x" * 99 + b"\n"  # 100 bytes, the size of a small framed event
SLUGS = {
    RAW: "raw",
    RAW_PREALLOCATED: "raw-preallocated",
    OURS: "ours",
    OURS_NO_SYNC: "ours-no-sync",
    PEER: "peer-app",
    PEER_RECORDER: "peer-recorder",
}

Appender = Callable[[int], None]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    writers: int
    commits: int  # per writer
    events_per_commit: int
    subjects: tuple[str, ...]

    @property
    def events(self) -> int:
        return self.writers * self.commits * self.events_per_commit


@dataclass
class Result:
    rates: list[float] = field(default_factory=list)  # events/s, one per round
    timing: Timing = field(default_factory=Timing)

    @property
    def events_per_s(self) -> float:
        return median(self.rates) if self.rates else float("nan")


@dataclass
class Run:
    scratch: Scratch
    store_url: str | None
    warmup: int
    peer_settings: dict[str, Any] | None = None


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    writers = args.writers
    engines = (OURS, PEER, PEER_RECORDER)
    w1 = (RAW, RAW_PREALLOCATED, *engines, OURS_NO_SYNC)
    return [
        Scenario("w1", "1 writer, 1 event/commit", 1, args.commits, 1, w1),
        Scenario(
            "w8",
            f"{writers} writers, 1 event/commit",
            writers,
            max(1, 2 * args.commits // writers),
            1,
            (*engines, OURS_NO_SYNC),
        ),
        Scenario("b100", "1 writer, 100 events/commit", 1, args.batches, 100, engines),
    ]


@contextmanager
def raw_file(run: Run, tag: str, preallocated: bool) -> Iterator[Callable[[int], Appender]]:
    """os.write + os.fdatasync of 100-byte records: appended to a growing file (what the issue
    compares with: each sync also journals the new size), or written over a file filled and
    synced beforehand (context: data-only syncs, the disk's ceiling)."""
    path = run.scratch.path(f"{tag}.raw")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | (0 if preallocated else os.O_APPEND), 0o644)
    offset = 0
    if preallocated:
        os.write(fd, bytes(RAW_PREALLOCATED_BYTES))
        os.fsync(fd)

    def append(count: int) -> None:
        nonlocal offset
        data = RAW_RECORD * count
        if preallocated:
            if offset + len(data) > RAW_PREALLOCATED_BYTES:
                offset = 0  # wrap around: still over blocks written and synced before
            os.pwrite(fd, data, offset)
            offset += len(data)
        else:
            os.write(fd, data)
        os.fdatasync(fd)

    try:
        yield lambda _writer: append
    finally:
        os.close(fd)
        run.scratch.remove(path.name)


@contextmanager
def opened(subject: str, run: Run, tag: str) -> Iterator[Callable[[int], Appender]]:
    """A fresh store of `subject` for one measurement; yields writer index -> appender."""
    if subject in (RAW, RAW_PREALLOCATED):
        with raw_file(run, tag, subject == RAW_PREALLOCATED) as factory:
            yield factory
    elif subject in (OURS, OURS_NO_SYNC):
        location = run.store_url or str(run.scratch.path(tag))
        # durable by default (fdatasync before ack); sync=none shows the CPU ceiling (context)
        options = {"sync": "none"} if subject == OURS_NO_SYNC else {}
        store = ours.open_ours(location, **options)
        try:
            yield lambda writer: ours.appender(store, writer)
        finally:
            store.close()
            if not ours.is_memory(location):
                run.scratch.remove(tag)
    else:
        app = peer.open_app(run.scratch.path(f"{tag}.sqlite"))
        if run.peer_settings is None:
            run.peer_settings = peer.settings(app)
        make = peer.app_appender if subject == PEER else peer.recorder_appender
        try:
            yield lambda _writer: make(app)
        finally:
            app.close()
            run.scratch.remove(f"{tag}.sqlite")


def measure(factory: Callable[[int], Appender], scenario: Scenario, warmup: int) -> Timing:
    """Run the scenario's writers as threads released together; time each commit."""
    appenders = [factory(writer) for writer in range(scenario.writers)]
    size = scenario.events_per_commit
    for append in appenders:
        for _ in range(warmup):
            append(size)
    timings = [Timing() for _ in appenders]
    errors: list[BaseException] = []
    gate = threading.Barrier(len(appenders) + 1)

    def work(append: Appender, timing: Timing) -> None:
        clock = time.perf_counter
        latencies = timing.latencies
        gate.wait()
        try:
            for _ in range(scenario.commits):
                started = clock()
                append(size)
                latencies.append(clock() - started)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=work, args=pair) for pair in zip(appenders, timings, strict=True)
    ]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    total = Timing(wall_seconds=wall)
    for timing in timings:
        total.latencies.extend(timing.latencies)
    return total


def run_all(run: Run, plan: list[Scenario], rounds: int) -> dict[tuple[str, str], Result]:
    results: dict[tuple[str, str], Result] = {}
    steps_total = rounds * sum(len(s.subjects) for s in plan)
    with Steps() as progress:
        task = progress.task("appends", steps_total)
        for round_index in range(rounds):
            for scenario in plan:
                shift = round_index % len(scenario.subjects)
                order = scenario.subjects[shift:] + scenario.subjects[:shift]
                for subject in order:
                    tag = f"{scenario.key}-{SLUGS[subject]}-r{round_index}"
                    with opened(subject, run, tag) as factory:
                        timing = measure(factory, scenario, run.warmup)
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


def report(args: argparse.Namespace, run: Run, plan: list[Scenario], results: dict) -> None:
    def rate(key: str, subject: str) -> float:
        return results[(key, subject)].events_per_s

    rows = []
    for scenario in plan:
        for subject in scenario.subjects:
            result = results[(scenario.key, subject)]
            vs_peer = ratio(result.events_per_s, rate(scenario.key, PEER))
            vs_raw = ratio(result.events_per_s, rate("w1", RAW))
            rows.append(
                [
                    scenario.title,
                    subject,
                    fmt_rate(result.events_per_s),
                    fmt_rate(result.events_per_s / scenario.events_per_commit),
                    fmt_ms(result.timing.quantile_ms(0.5)),
                    fmt_ms(result.timing.quantile_ms(0.99)),
                    fmt_ratio(vs_peer),
                    fmt_ratio(vs_raw),
                ]
            )
    columns = ["scenario", "engine", "events/s", "commits/s", "p50 ms", "p99 ms", "÷ peer", "÷ raw"]
    print_table(
        f"Durable appends: median of {args.rounds} round(s); latency per commit", columns, rows
    )
    ratios = {
        "w1_ours_over_raw_fdatasync": ratio(rate("w1", OURS), rate("w1", RAW)),
        "w1_ours_over_peer": ratio(rate("w1", OURS), rate("w1", PEER)),
        "w8_ours_over_w1_ours": ratio(rate("w8", OURS), rate("w1", OURS)),
        "b100_ours_over_peer": ratio(rate("b100", OURS), rate("b100", PEER)),
        "w8_ours_over_peer": ratio(rate("w8", OURS), rate("w8", PEER)),
        "w1_ours_over_peer_recorder": ratio(rate("w1", OURS), rate("w1", PEER_RECORDER)),
        "b100_ours_over_peer_recorder": ratio(rate("b100", OURS), rate("b100", PEER_RECORDER)),
        "w1_peer_over_raw_fdatasync": ratio(rate("w1", PEER), rate("w1", RAW)),
        "w1_ours_over_raw_preallocated": ratio(rate("w1", OURS), rate("w1", RAW_PREALLOCATED)),
        "w1_ours_over_ours_no_sync": ratio(rate("w1", OURS), rate("w1", OURS_NO_SYNC)),
        "w8_ours_over_ours_no_sync": ratio(rate("w8", OURS), rate("w8", OURS_NO_SYNC)),
        "w8_peer_over_w1_peer": ratio(rate("w8", PEER), rate("w1", PEER)),
    }
    targets = {
        "w1_ours_over_raw_fdatasync": verdict(ratios["w1_ours_over_raw_fdatasync"], 0.8),
        "w1_ours_over_peer": verdict(ratios["w1_ours_over_peer"], 1.5),
        "w8_ours_over_w1_ours": verdict(ratios["w8_ours_over_w1_ours"], 4.0),
        "b100_ours_over_peer": verdict(ratios["b100_ours_over_peer"], 3.0),
    }
    notes = notes_for(run, targets)
    print_notes(notes)
    figures = {
        f"{key}/{subject}": {
            "events_per_s": round(result.events_per_s, 1),
            "rounds_events_per_s": [round(r, 1) for r in result.rates],
            "p50_ms": round(result.timing.quantile_ms(0.5), 4),
            "p99_ms": round(result.timing.quantile_ms(0.99), 4),
        }
        for (key, subject), result in results.items()
    }
    config = {
        "store": run.store_url or "embedded log (path under --dir), sync default (durable)",
        "quick": args.quick,
        "rounds": args.rounds,
        "warmup_commits": run.warmup,
        "scenarios": {
            s.key: {
                "writers": s.writers,
                "commits_per_writer": s.commits,
                "events_per_commit": s.events_per_commit,
            }
            for s in plan
        },
    }
    result = {
        "benchmark": "append",
        "ratios": ratios,
        "targets": targets,
        "figures": figures,
        "peer": {**(run.peer_settings or {}), "ratios_use": PEER, "context": PEER_RECORDER},
        "config": config,
        "disk": run.scratch.describe(),
        "environment": environment(),
    }
    emit_json(result, "bench_append", args.json_out)


def notes_for(run: Run, targets: dict[str, dict[str, Any]]) -> list[str]:
    settings = run.peer_settings or {}
    notes = [
        f"peer: {settings.get('library')} on SQLite {settings.get('sqlite')}, "
        f"journal_mode={settings.get('journal_mode')}, synchronous={settings.get('synchronous')}"
        f" (the library's defaults); ratios use {PEER} (an Aggregate saved per commit); "
        f"{PEER_RECORDER} (insert_events of StoredEvents) is shown for context.",
        f"disk: {run.scratch.describe()['device']}; {RAW} = os.write(100 B) + os.fdatasync "
        f"appending to a file (the target's reference); {RAW_PREALLOCATED} = the same over "
        "blocks written and synced beforehand (context: no size change to journal).",
        f"{OURS_NO_SYNC}: the same appends without fdatasync (not durable; context: the "
        "CPU cost of a commit, the ceiling group commit can approach).",
    ]
    if run.store_url:
        notes.append(
            f"[yellow]eventbook ran on {run.store_url}: a harness check, not a measurement"
        )
    for name, target in targets.items():
        bound = f">= {target['min']}"
        mark = {True: "[green]met[/]", False: "[red]NOT met[/]", None: "-"}[target["met"]]
        notes.append(f"target {name}: {fmt_ratio(target['value'])} ({bound}) {mark}")
    return notes


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--commits",
        type=int,
        default=None,
        help="commits of the 1-writer run (default 5000; --quick 300); the "
        "writers of w8 share twice as many",
    )
    parser.add_argument(
        "--batches", type=int, default=None, help="commits of 100 events (default 500; --quick 40)"
    )
    parser.add_argument("--writers", type=int, default=8, help="writer threads of w8")
    parser.add_argument("--rounds", type=int, default=None, help="default 3; --quick 1")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="unmeasured commits per writer first (default 20; --quick 5)",
    )
    args = parser.parse_args()
    check_store_url(parser, args.store_url)
    quick = args.quick
    args.commits = args.commits or (300 if quick else 5000)
    args.batches = args.batches or (40 if quick else 500)
    args.rounds = args.rounds or (1 if quick else 3)
    warmup = args.warmup if args.warmup is not None else (5 if quick else 20)
    scratch = Scratch.create(args.dir, "append", args.keep)
    run = Run(scratch, args.store_url, warmup)
    try:
        plan = scenarios(args)
        results = run_all(run, plan, args.rounds)
        report(args, run, plan, results)
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
