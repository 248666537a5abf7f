"""Projections beside the peer: rebuilding the bank's balances table from a long log, and the
lag of a live read model.

  rebuild    the bank example's `balances` projection rebuilt from position 0 over a log of N
             events (default 1,000,000: AccountOpened, then Deposited / Withdrawn over 1,000
             accounts) into its SQLite table, events/s; beside it, in the same rounds, the
             store's raw read-all rate (`for e in store.read_all(): pass`). The peer: the same
             events recorded by an eventsourcing Application on SQLite, projected by its
             ProjectionRunner into a SQLite tracking recorder holding the same table.
  lag        a writer thread handling ~1,000 Deposit commands/s (durable) while the runner
             follows the log; from the append's acknowledgement to the row being visible in
             the read model (a reader polling the table every millisecond), p50/p99.
Both logs are written first (eventbook: 1,000 events per commit with sync="none"; the peer:
1,000 events per save). Every file is under one scratch directory (one disk). Prints a table,
then one JSON line with the figures the issue sets targets for.

    python benchmarks/bench_projections.py            # 1,000,000 events: a few minutes
    python benchmarks/bench_projections.py --quick    # CI-sized: seconds
"""

from __future__ import annotations

import argparse
import gc
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import eventbook as eb
import ours
import peer
from common import (
    Scratch,
    Steps,
    base_parser,
    check_store_url,
    emit_json,
    environment,
    fmt_rate,
    fmt_ratio,
    median,
    percentile,
    print_notes,
    print_table,
    ratio,
    verdict,
)
from eventbook.examples import bank

OURS = ours.LABEL
PEER = "eventsourcing (ProjectionRunner)"
MARK = {True: "[green]met[/]", False: "[red]NOT met[/]", None: "-"}
WITHDRAW_SHARE = 0.3  # of the movements, when the balance allows it
AMOUNT_MAX = 1000
VISIBLE_TIMEOUT_SECONDS = 60.0  # after the last append, for every row to show


# -- the events ----------------------------------------------------------------------------------


class BankPlan:
    """The same bank events for both engines, in log order: (account index, type, amount).

    The first `accounts` events open the accounts; each later one is a Deposited or (when the
    balance allows, about WITHDRAW_SHARE of the time) a Withdrawn of 1..AMOUNT_MAX on an account
    drawn at random. `expected` (account index -> (balance, movements)) is set by iterating."""

    def __init__(self, events: int, accounts: int, seed: int) -> None:
        self.events = events
        self.accounts = min(accounts, events)
        self.seed = seed
        self.expected: dict[int, tuple[int, int]] = {}

    def __iter__(self) -> Iterator[tuple[int, str, int]]:
        rng = random.Random(f"{self.seed}-bank")
        balances = [0] * self.accounts
        movements = [0] * self.accounts
        for index in range(self.accounts):
            yield index, "AccountOpened", 0
        for _ in range(self.events - self.accounts):
            index = rng.randrange(self.accounts)
            amount = rng.randint(1, AMOUNT_MAX)
            if rng.random() < WITHDRAW_SHARE and balances[index] >= amount:
                balances[index] -= amount
                kind = "Withdrawn"
            else:
                balances[index] += amount
                kind = "Deposited"
            movements[index] += 1
            yield index, kind, amount
        self.expected = {i: (balances[i], movements[i]) for i in range(self.accounts)}


@dataclass
class Run:
    args: argparse.Namespace
    scratch: Scratch
    plan: BankPlan
    store: Any = None  # ours, open for the whole run
    models: dict[str, Any] = field(default_factory=dict)  # ours: the store's read models
    peer_db: str = ""
    peer_ids: list[Any] = field(default_factory=list)  # the peer's account ids, by index
    peer_last: int = 0  # the peer's last notification id
    peer_view_db: str = ""  # the view the last peer rebuild filled (followed in the lag part)
    peer_settings: dict[str, Any] = field(default_factory=dict)
    loads: dict[str, float] = field(default_factory=dict)  # engine -> events/s written


# -- writing the logs ----------------------------------------------------------------------------


def build(run: Run, progress: Steps) -> None:
    args = run.args
    events = args.events
    location = args.store_url or str(run.scratch.path("ours"))
    task = progress.task(f"write {OURS} ({events:,} events)", events)
    started = time.perf_counter()
    store = ours.open_ours(location, sync="none")  # a bulk load: no fdatasync per commit
    ours.load_bank(store, run.plan, args.load_batch, lambda n: progress.advance(task, n))
    run.loads[OURS] = events / (time.perf_counter() - started)
    if not ours.is_memory(location):
        store.close()  # reopened as a later process would open it: indexes flushed, no cache
        store = ours.open_ours(location)
    run.store = store
    run.models = ours.read_models(store)
    if store.head_position() != events:
        raise RuntimeError(f"{OURS}: wrote {events:,} events, head is {store.head_position():,}")

    run.peer_db = str(run.scratch.path("peer-bank.sqlite"))
    task = progress.task(f"write {peer.LABEL} ({events:,} events)", events)
    started = time.perf_counter()
    app = peer.open_bank(run.peer_db)
    run.peer_ids = peer.load_bank(
        app, run.plan, args.load_batch, lambda n: progress.advance(task, n)
    )
    run.peer_settings = peer.settings(app)
    run.peer_last = app.recorder.max_notification_id()
    app.close()
    run.loads[peer.LABEL] = events / (time.perf_counter() - started)
    progress.note(
        f"written: {OURS} {run.loads[OURS]:,.0f} events/s (sync=none), "
        f"{peer.LABEL} {run.loads[peer.LABEL]:,.0f} events/s ({args.load_batch} per save)"
    )


# -- rebuilds ------------------------------------------------------------------------------------


def check_rows(engine: str, found: dict[str, tuple[int, int]], want: dict[str, tuple[int, int]]):
    if found != want:
        wrong = sorted(k for k in want.keys() | found.keys() if found.get(k) != want.get(k))
        raise RuntimeError(
            f"{engine}: the balances table differs from the events in {len(wrong)} accounts, "
            f"e.g. {wrong[0]}: found {found.get(wrong[0])}, expected {want.get(wrong[0])}"
        )


def ours_read_all(run: Run, progress: Steps) -> float:
    """The store's raw read-all: events/s of `for e in store.read_all(): pass`."""
    store = run.store
    progress.note(f"  {OURS}: read-all of {run.args.events:,} events ...")
    gc.collect()  # the garbage of earlier parts is not charged to this one (same for the peer)
    started = time.perf_counter()
    for _ in store.read_all():
        pass
    return run.args.events / (time.perf_counter() - started)


def ours_rebuild(run: Run, progress: Steps, task: Any) -> float:
    """A runner over the store rebuilds `balances` into a new generation of its table (the
    previous one keeps serving until the switch); events/s, from the runner's construction to
    the switch. The bar moves from the runner's own progress callback."""
    shown = [0]

    def moved(position: int, _head: int) -> None:
        progress.advance(task, position - shown[0])
        shown[0] = position

    gc.collect()
    started = time.perf_counter()
    runner = ours.projection_runner(run.store, run.models)
    runner.rebuild(ours.BALANCES, progress=moved)
    elapsed = time.perf_counter() - started
    progress.advance(task, run.args.events - shown[0], force=True)
    want = {f"a{i}": v for i, v in run.plan.expected.items()}
    check_rows(OURS, ours.balances_rows(run.models["sqlite"]), want)
    return run.args.events / elapsed


def peer_read_all(run: Run, progress: Steps) -> float:
    """The peer's read-all (context): notifications in pages of 1,000, decoded."""
    progress.note(f"  {peer.LABEL}: read-all of {run.args.events:,} events ...")
    app = peer.open_bank(run.peer_db)
    try:
        gc.collect()
        started = time.perf_counter()
        for _ in peer.read_all(app, 1000):  # type: ignore[arg-type]
            pass
        return run.args.events / (time.perf_counter() - started)
    finally:
        app.close()


def peer_rebuild(
    run: Run,
    progress: Steps,
    tag: str,
    view_class: type[peer.BalancesView],
    events: int,
    check: bool,
) -> tuple[float, dict[str, Any]]:
    """The library's ProjectionRunner over the application's database into a fresh view file,
    until the `events`th notification is processed; events/s from the runner's construction
    (which starts its threads) to that event's transaction, and the view's SQLite settings."""
    view_db = str(run.scratch.path(f"peer-view-{tag}.sqlite"))
    app = peer.open_bank(run.peer_db)
    (nth,) = app.recorder.select_notifications(start=events, limit=1)
    app.close()
    task = progress.task(f"rebuild {PEER} {tag} ({events:,})", events)
    gc.collect()
    started = time.perf_counter()
    with peer.bank_runner(run.peer_db, view_db, view_class, nth.id) as runner:
        projection = type(runner.projection)
        shown = 0
        while not projection.reached.wait(0.1):
            if runner.is_interrupted.is_set():
                runner.run_forever(0)  # re-raises the processing thread's error
                raise RuntimeError(f"{PEER} stopped before notification {nth.id}")
            reached = min(projection.last, events)
            progress.advance(task, reached - shown)
            shown = reached
        elapsed = projection.reached_at - started
        progress.advance(task, events - shown, force=True)
        settings = peer.view_settings(runner.view)
    runner.view.datastore.close()
    if check:
        want = {run.peer_ids[i].hex: v for i, v in run.plan.expected.items()}
        check_rows(PEER, peer.balances_rows(view_db), want)
        run.peer_view_db = view_db
    return events / elapsed, settings


def rebuilds(run: Run, progress: Steps) -> dict[str, Any]:
    """`--rounds` rounds of ours (read-all, then rebuild) and `--peer-rounds` of the peer
    (read-all, then rebuild with synchronous=NORMAL), interleaved; then the peer as configured
    by default (synchronous=FULL) over the first `--peer-default-events` events (context)."""
    args = run.args
    found: dict[str, Any] = {
        "read_all/ours": [],
        "rebuild/ours": [],
        "read_all/peer": [],
        "rebuild/peer": [],
    }
    for index in range(max(args.rounds, args.peer_rounds)):
        if index < args.rounds:
            found["read_all/ours"].append(ours_read_all(run, progress))
            task = progress.task(f"rebuild {OURS} r{index + 1} ({args.events:,})", args.events)
            found["rebuild/ours"].append(ours_rebuild(run, progress, task))
            progress.note(
                f"round {index + 1}: {OURS} read-all {found['read_all/ours'][-1]:,.0f} events/s,"
                f" rebuild {found['rebuild/ours'][-1]:,.0f} events/s"
            )
        if index < args.peer_rounds:
            found["read_all/peer"].append(peer_read_all(run, progress))
            rate, settings = peer_rebuild(
                run, progress, f"r{index + 1}", peer.NormalBalancesView, args.events, check=True
            )
            found["rebuild/peer"].append(rate)
            found["peer_view"] = settings
            progress.note(
                f"round {index + 1}: {peer.LABEL} read-all {found['read_all/peer'][-1]:,.0f} "
                f"events/s, {PEER} rebuild {rate:,.0f} events/s (synchronous=NORMAL)"
            )
    prefix = min(args.peer_default_events, args.events)
    rate, settings = peer_rebuild(
        run, progress, "default", peer.BalancesView, prefix, check=prefix == args.events
    )
    found["rebuild/peer_default"] = rate
    found["peer_default_view"] = settings
    progress.note(
        f"{PEER} as configured by default (synchronous={settings['synchronous']}), first "
        f"{prefix:,} events: {rate:,.0f} events/s"
    )
    return found


# -- live lag ------------------------------------------------------------------------------------


@dataclass
class Lag:
    lags: list[float] = field(default_factory=list)  # seconds, sorted at the end
    appends: int = 0
    wall_seconds: float = 0.0
    unseen: int = 0  # appends whose row never showed within VISIBLE_TIMEOUT_SECONDS

    def ms(self, q: float) -> float:
        return percentile(self.lags, q) * 1000.0

    @property
    def rate(self) -> float:
        return self.appends / self.wall_seconds if self.wall_seconds else float("nan")

    def report(self) -> dict[str, Any]:
        return {
            "p50_ms": round(self.ms(0.5), 3),
            "p90_ms": round(self.ms(0.9), 3),
            "p99_ms": round(self.ms(0.99), 3),
            "max_ms": round(self.ms(1.0), 3),
            "count": len(self.lags),
            "unseen": self.unseen,
            "appends_per_s": round(self.rate, 1),
        }


def measure_lag(
    write: Callable[[int], int],
    visible: Callable[[], int],
    args: argparse.Namespace,
    progress: Steps,
    task: Any,
) -> Lag:
    """`write(i)` appends one event and returns its position once acknowledged, at
    `--rate` a second (to a schedule: a late append does not shift the later ones), `--lag-warmup`
    unmeasured ones first. An observer thread asks `visible()` (the newest position whose row
    the read model shows) every `--poll-ms` and takes, for every acknowledged position it
    covers, the time since the acknowledgement."""
    pending: deque[tuple[int, float, bool]] = deque()
    lag = Lag()
    writing_done = threading.Event()
    poll = args.poll_ms / 1000.0
    failures: list[BaseException] = []

    def observe() -> None:
        try:
            deadline = None
            while True:
                seen = visible()
                now = time.perf_counter()
                while pending and pending[0][0] <= seen:
                    _, acked, measured = pending.popleft()
                    if measured:
                        lag.lags.append(now - acked)
                if writing_done.is_set():
                    if not pending:
                        return
                    deadline = deadline or now + VISIBLE_TIMEOUT_SECONDS
                    if now > deadline:
                        lag.unseen = sum(1 for item in pending if item[2])
                        return
                time.sleep(poll)
        except BaseException as exc:  # reported by the writer's side
            failures.append(exc)

    observer = threading.Thread(target=observe, name="lag-observer", daemon=True)
    observer.start()
    interval = 1.0 / args.rate
    total = args.lag_warmup + args.lag_appends
    started = time.perf_counter()
    measured_from = started
    try:
        for i in range(total):
            if i == args.lag_warmup:
                measured_from = time.perf_counter()
            delay = started + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            position = write(i)
            pending.append((position, time.perf_counter(), i >= args.lag_warmup))
            progress.advance(task)
            if failures:
                break
    finally:
        lag.wall_seconds = time.perf_counter() - measured_from
        writing_done.set()
        observer.join()
    if failures:
        raise RuntimeError(f"the lag observer failed: {failures[0]!r}") from failures[0]
    lag.appends = args.lag_appends
    lag.lags.sort()
    return lag


def ours_lag(run: Run, progress: Steps) -> Lag:
    """eventbook: `runner.start()` follows the store; a writer thread runs Deposit commands
    through an Engine (each a durable commit); the observer reads the `balances` view through a
    read-only read model of its own (the runner's own one for a memory store)."""
    args = run.args
    store = run.store
    app = ours.balances_app()
    engine = eb.Engine(app, store)
    accounts = [f"live-{k}" for k in range(args.live_accounts)]
    for account in accounts:
        engine.execute(bank.OpenAccount(account_id=account))
    deposits = [bank.Deposit(account_id=a, amount=1) for a in accounts]
    runner = ours.projection_runner(store, run.models)
    readonly = None
    if ours.is_memory(args.store_url or ""):
        model = run.models["sqlite"]
    else:
        readonly = ours.read_models(store, readonly=True)
        model = readonly["sqlite"]
    task = progress.task(f"lag {OURS}", args.lag_warmup + args.lag_appends)
    runner.start()
    try:
        runner.wait_for(store.head_position(), [ours.BALANCES], timeout=60)

        def write(i: int) -> int:
            return engine.execute(deposits[i % len(deposits)]).position

        return measure_lag(write, lambda: ours.visible_position(model), args, progress, task)
    finally:
        runner.stop()
        if readonly is not None:
            readonly["sqlite"].close()


def peer_lag(run: Run, progress: Steps) -> Lag:
    """The peer: the library's ProjectionRunner on the view the last rebuild filled (it resumes
    from its tracking record); a writer thread saves a Deposited on a BankAccount through the
    runner's application (`runner.app`, the library's write model; each save a durable commit);
    the observer reads the balances table through a read-only connection of its own."""
    args = run.args
    view_db = run.peer_view_db
    task = progress.task(f"lag {PEER}", args.lag_warmup + args.lag_appends)
    with peer.bank_runner(run.peer_db, view_db, peer.NormalBalancesView, 0) as runner:
        app = runner.app
        accounts = [peer.BankAccount(f"live-{k}") for k in range(args.live_accounts)]
        head = app.save(*accounts)[-1].notification.id
        runner.wait(head, timeout=60)
        visible = peer.visible_reader(view_db)

        def write(i: int) -> int:
            account = accounts[i % len(accounts)]
            account.deposit(1)
            return app.save(account)[-1].notification.id

        lag = measure_lag(write, visible, args, progress, task)
    runner.view.datastore.close()
    return lag


def lags(run: Run, progress: Steps) -> dict[str, Lag]:
    found = {"ours": ours_lag(run, progress)}
    progress.note(
        f"lag {OURS}: p50 {found['ours'].ms(0.5):.2f} ms, p99 {found['ours'].ms(0.99):.2f} ms "
        f"at {found['ours'].rate:,.0f} appends/s"
    )
    found["peer"] = peer_lag(run, progress)
    progress.note(
        f"lag {PEER}: p50 {found['peer'].ms(0.5):.2f} ms, p99 {found['peer'].ms(0.99):.2f} ms "
        f"at {found['peer'].rate:,.0f} appends/s"
    )
    return found


# -- report --------------------------------------------------------------------------------------


def below(value: float | None, bound: float) -> dict[str, Any]:
    """A target "below `bound`" (strictly) as JSON."""
    return {"value": value, "below": bound, "met": None if value is None else value < bound}


def report(run: Run, rebuilt: dict[str, Any], lagged: dict[str, Lag]) -> None:
    args = run.args
    ours_rebuild_rate = median(rebuilt["rebuild/ours"])
    ours_read = median(rebuilt["read_all/ours"])
    peer_rebuild_rate = median(rebuilt["rebuild/peer"])
    peer_read = median(rebuilt["read_all/peer"])
    ours_lag, peer_lag_ = lagged["ours"], lagged["peer"]
    ratios = {
        "rebuild_ours_events_per_s": round(ours_rebuild_rate),
        "rebuild_ours_over_read_all_ours": ratio(ours_rebuild_rate, ours_read),
        "rebuild_ours_over_peer": ratio(ours_rebuild_rate, peer_rebuild_rate),
        "lag_ours_p99_ms": round(ours_lag.ms(0.99), 3),
        "rebuild_ours_over_peer_default": ratio(ours_rebuild_rate, rebuilt["rebuild/peer_default"]),
        "rebuild_peer_over_read_all_peer": ratio(peer_rebuild_rate, peer_read),
        "read_all_ours_over_peer": ratio(ours_read, peer_read),
        "lag_ours_p50_ms": round(ours_lag.ms(0.5), 3),
        "lag_peer_p50_ms": round(peer_lag_.ms(0.5), 3),
        "lag_peer_p99_ms": round(peer_lag_.ms(0.99), 3),
        "lag_p99_peer_over_ours": ratio(peer_lag_.ms(0.99), ours_lag.ms(0.99)),
    }
    targets = {
        "rebuild_ours_events_per_s": verdict(ratios["rebuild_ours_events_per_s"], 100_000),
        "rebuild_ours_over_read_all_ours": verdict(ratios["rebuild_ours_over_read_all_ours"], 0.3),
        "rebuild_ours_over_peer": verdict(ratios["rebuild_ours_over_peer"], 3.0),
        "lag_ours_p99_ms": below(
            ratios["lag_ours_p99_ms"] if ours_lag.lags and not ours_lag.unseen else None, 100.0
        ),
    }
    table(run, rebuilt, lagged, ratios, targets)
    print_notes(notes_for(run, rebuilt, lagged, targets))
    figures = {
        "write_per_s": {k: round(v) for k, v in run.loads.items()},
        "read_all_ours_per_s": [round(r) for r in rebuilt["read_all/ours"]],
        "rebuild_ours_per_s": [round(r) for r in rebuilt["rebuild/ours"]],
        "read_all_peer_per_s": [round(r) for r in rebuilt["read_all/peer"]],
        "rebuild_peer_per_s": [round(r) for r in rebuilt["rebuild/peer"]],
        "rebuild_peer_default_per_s": round(rebuilt["rebuild/peer_default"]),
        "rebuild_peer_default_events": min(args.peer_default_events, args.events),
        "lag_ours": ours_lag.report(),
        "lag_peer": peer_lag_.report(),
    }
    result = {
        "benchmark": "projections",
        "events": args.events,
        "ratios": ratios,
        "targets": targets,
        "figures": figures,
        "peer": {
            **run.peer_settings,
            "view": rebuilt.get("peer_view", {}),
            "view_as_configured_by_default": rebuilt.get("peer_default_view", {}),
            "ratios_use": f"{PEER}, view with synchronous=NORMAL (eventbook's read-model setting)",
        },
        "config": {
            "store": args.store_url or "embedded log (path under --dir)",
            "quick": args.quick,
            "events": args.events,
            "accounts": run.plan.accounts,
            "load_batch": args.load_batch,
            "rounds": args.rounds,
            "peer_rounds": args.peer_rounds,
            "peer_default_events": args.peer_default_events,
            "rate": args.rate,
            "lag_appends": args.lag_appends,
            "lag_warmup": args.lag_warmup,
            "live_accounts": args.live_accounts,
            "poll_ms": args.poll_ms,
            "seed": args.seed,
        },
        "disk": run.scratch.describe(),
        "environment": environment(),
    }
    emit_json(result, "bench_projections", args.json_out)


def table(
    run: Run,
    rebuilt: dict[str, Any],
    lagged: dict[str, Lag],
    ratios: dict[str, Any],
    targets: dict[str, dict[str, Any]],
) -> None:
    args = run.args
    events = f"{args.events:,}"
    prefix = min(args.peer_default_events, args.events)

    def met(key: str) -> str:
        return MARK[targets[key]["met"]]

    ours_lag, peer_lag_ = lagged["ours"], lagged["peer"]
    rows = [
        [
            f"rebuild {events} events into the balances table (events/s)",
            fmt_rate(median(rebuilt["rebuild/ours"])),
            fmt_rate(median(rebuilt["rebuild/peer"])),
            fmt_ratio(ratios["rebuild_ours_over_peer"]),
            "≥ 3x",
            met("rebuild_ours_over_peer"),
        ],
        [
            "rebuild, ours alone (events/s)",
            fmt_rate(median(rebuilt["rebuild/ours"])),
            "-",
            "-",
            "ours ≥ 100,000",
            met("rebuild_ours_events_per_s"),
        ],
        [
            f"raw read-all of the {events} events (events/s)",
            fmt_rate(median(rebuilt["read_all/ours"])),
            fmt_rate(median(rebuilt["read_all/peer"])),
            fmt_ratio(ratios["read_all_ours_over_peer"]),
            "-",
            "-",
        ],
        [
            "rebuild ÷ raw read-all, same engine, same run",
            f"{ratios['rebuild_ours_over_read_all_ours']:.3f}",
            f"{ratios['rebuild_peer_over_read_all_peer']:.3f}",
            "-",
            "ours ≥ 0.3",
            met("rebuild_ours_over_read_all_ours"),
        ],
        [
            f"peer's view as configured by default (synchronous=FULL), first {prefix:,} events "
            "(events/s)",
            fmt_rate(median(rebuilt["rebuild/ours"])),
            fmt_rate(rebuilt["rebuild/peer_default"]),
            fmt_ratio(ratios["rebuild_ours_over_peer_default"]),
            "context",
            "-",
        ],
        [
            f"live lag at {args.rate:,}/s, append → row visible, p50 (ms)",
            f"{ours_lag.ms(0.5):.2f}",
            f"{peer_lag_.ms(0.5):.2f}",
            fmt_ratio(ratio(peer_lag_.ms(0.5), ours_lag.ms(0.5))),
            "-",
            "-",
        ],
        [
            f"live lag at {args.rate:,}/s, append → row visible, p99 (ms)",
            f"{ours_lag.ms(0.99):.2f}",
            f"{peer_lag_.ms(0.99):.2f}",
            fmt_ratio(ratios["lag_p99_peer_over_ours"]),
            "ours < 100 ms",
            met("lag_ours_p99_ms"),
        ],
    ]
    print_table(
        f"Projections: {OURS} beside {PEER} (ratio: how many times faster ours is)",
        ["measure", OURS, PEER, "ratio", "target", "met"],
        rows,
        text_columns=1,
    )


def notes_for(
    run: Run,
    rebuilt: dict[str, Any],
    lagged: dict[str, Lag],
    targets: dict[str, dict[str, Any]],
) -> list[str]:
    args = run.args
    s = run.peer_settings
    view = rebuilt.get("peer_view", {})
    default_view = rebuilt.get("peer_default_view", {})
    ours_lag, peer_lag_ = lagged["ours"], lagged["peer"]

    def rates(key: str) -> str:
        return ", ".join(f"{r:,.0f}" for r in rebuilt[key])

    notes = [
        f"events: {args.events:,} bank events, {run.plan.accounts:,} accounts (AccountOpened "
        f"each, then Deposited / Withdrawn of 1..{AMOUNT_MAX} on random accounts); written "
        f"{args.load_batch:,} per commit / save: {OURS} {run.loads[OURS]:,.0f} events/s "
        f"(sync=none, then reopened), {peer.LABEL} {run.loads[peer.LABEL]:,.0f} events/s.",
        "ours: eb.ProjectionRunner(store, the bank app with only its balances projection, "
        f"open_read_models(store, {{'sqlite'}})).rebuild('balances'); {args.rounds} round(s), "
        "median; rebuild events/s "
        f"{rates('rebuild/ours')}; raw read-all (for e in store.read_all(): pass) "
        f"{rates('read_all/ours')}.",
        f"peer: {s.get('library')} on SQLite {s.get('sqlite')}; its ProjectionRunner(Bank, "
        "Balances, BalancesView), the view a SQLiteTrackingRecorder with the same balances table,"
        " one transaction per event (row + tracking); the application's SQLite recorder given a "
        "subscription (the library's ListenNotifySubscription, woken by inserts in-process, 50 ms "
        f"poll otherwise); {args.peer_rounds} round(s), each into a fresh view file: rebuild "
        f"events/s {rates('rebuild/peer')}; read-all (pages of 1,000, decoded) "
        f"{rates('read_all/peer')}.",
        f"peer's view: journal_mode={view.get('journal_mode')}, synchronous="
        f"{view.get('synchronous')} for the ratios (eventbook's read model: WAL, NORMAL); as the "
        f"library leaves it: synchronous={default_view.get('synchronous')} (a WAL sync per event) "
        "- context only.",
        f"lag: {args.lag_appends:,} appends at {args.rate:,}/s after {args.lag_warmup:,} "
        f"unmeasured, one event per durable commit on {args.live_accounts} new accounts; ours: "
        f"eb.Engine.execute(Deposit) with runner.start() following, {ours_lag.rate:,.0f} "
        f"appends/s reached; peer: account.deposit(1); runner.app.save(account), "
        f"{peer_lag_.rate:,.0f} appends/s reached; seen by a reader polling "
        f"max(position) of the balances table every {args.poll_ms:g} ms (adds up to that much). "
        f"ours p90 {ours_lag.ms(0.9):.2f} ms, max {ours_lag.ms(1.0):.2f} ms; peer p90 "
        f"{peer_lag_.ms(0.9):.2f} ms, max {peer_lag_.ms(1.0):.2f} ms.",
        f"disk: {run.scratch.describe()['device']}; page cache warm (just written).",
    ]
    if ours_lag.unseen or peer_lag_.unseen:
        notes.append(
            f"[red]rows never visible within {VISIBLE_TIMEOUT_SECONDS:g} s: ours "
            f"{ours_lag.unseen}, peer {peer_lag_.unseen}"
        )
    if args.store_url:
        notes.append(
            f"[yellow]eventbook ran on {args.store_url}: a harness check, not a measurement"
        )
    for name, target in targets.items():
        if "below" in target:
            bound = f"< {target['below']}"
        else:
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
        help="events of the log (default 1,000,000; --quick 20,000)",
    )
    parser.add_argument("--accounts", type=int, default=1000, help="bank accounts of the log")
    parser.add_argument(
        "--load-batch", type=int, default=1000, help="events per commit / save when writing"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds of ours: read-all, rebuild (default 3; --quick 1)",
    )
    parser.add_argument(
        "--peer-rounds",
        type=int,
        default=1,
        help="rounds of the peer's rebuild (default 1: about 2 minutes at 1,000,000 events)",
    )
    parser.add_argument(
        "--peer-default-events",
        type=int,
        default=None,
        help="events of the peer's rebuild with its view as configured by default, a sync per "
        "event (default 20,000; --quick 2,000)",
    )
    parser.add_argument("--rate", type=int, default=1000, help="appends a second in the lag part")
    parser.add_argument(
        "--lag-appends",
        type=int,
        default=None,
        help="measured appends in the lag part (default 30,000; --quick 2,000)",
    )
    parser.add_argument(
        "--lag-warmup",
        type=int,
        default=None,
        help="unmeasured appends first (default 500; --quick 200)",
    )
    parser.add_argument(
        "--live-accounts", type=int, default=10, help="accounts the lag part deposits into"
    )
    parser.add_argument(
        "--poll-ms", type=float, default=1.0, help="how often the lag observer reads the table"
    )
    args = parser.parse_args()
    check_store_url(parser, args.store_url)
    quick = args.quick
    args.events = args.events or (20_000 if quick else 1_000_000)
    args.rounds = args.rounds or (1 if quick else 3)
    args.peer_default_events = args.peer_default_events or (2_000 if quick else 20_000)
    args.lag_appends = args.lag_appends or (2_000 if quick else 30_000)
    if args.lag_warmup is None:
        args.lag_warmup = 200 if quick else 500
    if (
        args.events < 2
        or args.accounts < 1
        or args.rounds < 1
        or args.peer_rounds < 1
        or args.rate < 1
        or args.live_accounts < 1
        or args.lag_warmup < 0
        or args.load_batch < 1
        or args.poll_ms <= 0
    ):
        parser.error(
            "--events must be at least 2; --accounts, --rounds, --peer-rounds, --rate, "
            "--live-accounts and --load-batch at least 1; --lag-warmup at least 0; --poll-ms "
            "above 0"
        )
    return args


def main() -> None:
    args = parse()
    scratch = Scratch.create(args.dir, "projections", args.keep)
    run = Run(args, scratch, BankPlan(args.events, args.accounts, args.seed))
    try:
        with Steps() as progress:
            build(run, progress)
            rebuilt = rebuilds(run, progress)
            lagged = lags(run, progress)
        report(run, rebuilt, lagged)
    finally:
        for model in {id(m): m for m in run.models.values()}.values():
            model.close()
        if run.store is not None:
            run.store.close()
        scratch.close()


if __name__ == "__main__":
    main()
