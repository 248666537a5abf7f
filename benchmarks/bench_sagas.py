"""Sagas end to end: seed 004's order saga (`eventbook.examples.shop.order_saga`) on the
embedded default (durable: every commit fsynced), in one run.

  burst   N orders (default 1,000) created as fast as one writer thread can, while a runner
          thread runs the saga (reserve credit, approve); sagas/s = N over the time from the
          first order to the last saga completed.
  paced   N orders created at a steady rate (default 500/s); the completion time of each saga
          (its OrderCreated recorded -> the saga's `completed` reaction recorded), p50/p99.
Each saga is three commands (CreateOrder, ReserveCredit, ApproveOrder) and three reactions.
Beside it, in the same run, the engine's own rate for bare durable commands (Deposit on the
bank) gives a ratio: how much of the engine's command rate a saga flow keeps (3 commands per
saga). Targets (issue 8): >= 500 sagas/s, p99 completion < 1 s.

    python benchmarks/bench_sagas.py            # 1,000 sagas per scenario, 3 rounds
    python benchmarks/bench_sagas.py --quick    # CI-sized
"""

from __future__ import annotations

import time
from typing import Any

import eventbook as eb
from common import (
    Scratch,
    Steps,
    base_parser,
    emit_json,
    environment,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    median,
    percentile,
    print_notes,
    print_table,
    ratio,
    verdict,
)
from eventbook.examples import bank, shop

CUSTOMERS = 50


def run_sagas(path: str, orders: int, rate: float | None) -> dict[str, Any]:
    """One scenario on a fresh store: sagas/s and completion times (seconds)."""
    with eb.open_store(path) as store:
        engine = eb.Engine(shop.app, store)
        for c in range(CUSTOMERS):
            engine.execute(shop.RegisterCustomer(customer_id=f"c{c}", credit_limit=10**12))
        runner = eb.SagaRunner(engine, shop.order_saga)
        runner.run_until_idle()
        start_position = store.head_position()
        runner.start(idle_wait=0.002)
        started = time.perf_counter()
        try:
            for i in range(orders):
                if rate is not None:
                    due = started + i / rate
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                engine.execute(
                    shop.CreateOrder(order_id=f"o{i}", customer_id=f"c{i % CUSTOMERS}", total=1)
                )
            done = _wait_for_completions(store, start_position, orders, timeout=120)
            elapsed = time.perf_counter() - started
        finally:
            runner.stop()
        created: dict[str, Any] = {}
        completed: dict[str, Any] = {}
        for e in store.read_all(after=start_position):
            if e.type == "OrderCreated":
                created[e.stream.removeprefix("order-")] = e.recorded_at
            elif e.type == "SagaReacted" and e.data["status"] == "completed":
                completed[e.stream.removeprefix("saga_order-")] = e.recorded_at
        latencies = sorted(
            (completed[o] - created[o]).total_seconds() for o in completed if o in created
        )
        return {
            "sagas": done,
            "elapsed": elapsed,
            "sagas_per_s": done / elapsed,
            "latencies": latencies,
            "errors": list(runner.errors),
        }


def _wait_for_completions(store: eb.EventStore, after: int, orders: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    seen = after
    done = 0
    while done < orders and time.monotonic() < deadline:
        for e in store.read_all(after=seen):
            seen = e.position
            if e.type == "SagaReacted" and e.data["status"] == "completed":
                done += 1
        if done < orders:
            store.wait_for_append(seen, 0.05)
    return done


def run_commands(path: str, count: int) -> float:
    """The engine's bare durable command rate (bank Deposit, one stream per 50 commands)."""
    with eb.open_store(path) as store:
        engine = eb.Engine(bank.app, store)
        for a in range(CUSTOMERS):
            engine.execute(bank.OpenAccount(account_id=f"a{a}"))
        started = time.perf_counter()
        for i in range(count):
            engine.execute(bank.Deposit(account_id=f"a{i % CUSTOMERS}", amount=1))
        return count / (time.perf_counter() - started)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=None, help="sagas per scenario")
    parser.add_argument("--rate", type=float, default=500.0, help="orders/s when paced")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    args = parser.parse_args()
    orders = args.orders or (100 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 3)
    scratch = Scratch.create(args.dir, "bench-sagas", args.keep)
    results: dict[str, list[dict[str, Any]]] = {"burst": [], "paced": []}
    command_rates: list[float] = []
    try:
        with Steps() as steps:
            task = steps.task("sagas", rounds * 3)
            for r in range(rounds):
                results["burst"].append(run_sagas(str(scratch.path(f"burst-{r}")), orders, None))
                steps.advance(task, force=True)
                paced = run_sagas(str(scratch.path(f"paced-{r}")), orders, args.rate)
                results["paced"].append(paced)
                steps.advance(task, force=True)
                command_rates.append(run_commands(str(scratch.path(f"commands-{r}")), orders * 3))
                steps.advance(task, force=True)
    finally:
        scratch.close()

    burst_rate = median([r["sagas_per_s"] for r in results["burst"]])
    paced_latency = sorted(x for r in results["paced"] for x in r["latencies"])
    burst_latency = sorted(x for r in results["burst"] for x in r["latencies"])
    commands = median(command_rates)
    p99 = percentile(paced_latency, 0.99) * 1000
    rows = [
        [
            "burst",
            f"{orders} orders at once",
            fmt_rate(burst_rate),
            fmt_ms(percentile(burst_latency, 0.5) * 1000),
            fmt_ms(percentile(burst_latency, 0.99) * 1000),
        ],
        [
            "paced",
            f"{orders} orders at {args.rate:,.0f}/s",
            fmt_rate(median([r["sagas_per_s"] for r in results["paced"]])),
            fmt_ms(percentile(paced_latency, 0.5) * 1000),
            fmt_ms(p99),
        ],
    ]
    print_table(
        f"Order sagas end to end, embedded log (durable), median of {rounds} rounds",
        ["scenario", "load", "sagas/s", "p50 completion ms", "p99 completion ms"],
        rows,
    )
    keeps = ratio(burst_rate * 3, commands)
    print_notes(
        [
            f"The engine's bare durable commands in the same run: {fmt_rate(commands)}/s; a "
            f"saga is 3 commands, so the burst keeps {fmt_ratio(keeps)} of that rate.",
            "Errors: " + (", ".join(e for r in results["burst"] for e in r["errors"]) or "none"),
        ]
    )
    result = {
        "benchmark": "sagas",
        "quick": args.quick,
        "orders": orders,
        "rounds": rounds,
        "burst_sagas_per_s": burst_rate,
        "engine_commands_per_s": commands,
        "targets": {
            "sagas_per_s": verdict(burst_rate, 500),
            "p99_completion_ms": verdict(p99, 1000, at_most=True),
        },
        "environment": environment(),
    }
    emit_json(result, "bench-sagas", args.json_out)


if __name__ == "__main__":
    main()
