"""Verification by re-decision of the bank example: recorded commands decided again per second.

  redecide   `eventbook.audit.verify_redecide` over a bank history: every recorded command
             (deposits, withdrawals, transfers over many accounts, about a tenth rejected)
             decided again with its recorded now and seed on the state just before it, and
             compared with the recorded events or rejection
  replay     `verify_replay` (a fresh fold of every event, no decision) over the same store:
             the floor re-decision builds on, for context
The history is written first through the Engine on an embedded log opened with sync="none"
(a bulk load), with actors and reasons; the store is then closed and reopened, as a later
`eventbook verify --redecide` would open it. Target (issue 11): >= 20,000 commands/s.

    python benchmarks/bench_audit.py            # 100,000 commands, median of 3 rounds
    python benchmarks/bench_audit.py --quick    # CI-sized
"""

from __future__ import annotations

import random
import time

import eventbook as eb
import ours
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
    print_notes,
    print_table,
    ratio,
    verdict,
)
from eventbook.audit import verify_redecide
from eventbook.engine.verification import verify_replay
from eventbook.examples import bank

TARGET_COMMANDS_PER_S = 20_000


def write_history(engine: eb.Engine, commands: int, accounts: int, seed: int, tick: object) -> None:
    rng = random.Random(seed)
    names = [f"a{i}" for i in range(accounts)]
    for name in names:
        engine.execute(bank.OpenAccount(account_id=name), metadata={"actor": "clerk"})
    for i in range(commands - accounts):
        a, b = rng.sample(names, 2)
        roll = rng.random()
        if roll < 0.5:
            command: eb.Command = bank.Deposit(account_id=a, amount=rng.randint(1, 100))
        elif roll < 0.8:
            command = bank.Withdraw(account_id=a, amount=rng.randint(1, 150))
        else:
            command = bank.Transfer(from_account=a, to_account=b, amount=rng.randint(1, 100))
        engine.execute(command, metadata={"actor": "teller", "reason": f"slip {i}"})
        if (i + 1) % 1000 == 0:
            tick(1000)  # type: ignore[operator]


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=None, help="commands in the history")
    parser.add_argument("--accounts", type=int, default=1000, help="accounts in the history")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    args = parser.parse_args()
    check_store_url(parser, args.store_url)
    commands = args.commands or (5_000 if args.quick else 100_000)
    rounds = args.rounds or (1 if args.quick else 3)
    accounts = min(args.accounts, commands // 10 or 1)
    scratch = Scratch.create(args.dir, "bench-audit", args.keep)
    location = args.store_url or str(scratch.path("bank"))
    redecide_rates: list[float] = []
    replay_rates: list[float] = []
    try:
        with Steps() as steps:
            task = steps.task(f"write {commands:,} bank commands", commands)
            store = ours.open_ours(location, sync="none")
            write_history(
                eb.Engine(bank.app, store),
                commands,
                accounts,
                args.seed,
                lambda n: steps.advance(task, n),
            )
            steps.advance(task, commands - (commands - accounts) // 1000 * 1000, force=True)
            if not ours.is_memory(location):
                store.close()
                store = ours.open_ours(location)
            task = steps.task("re-decide and replay", rounds * 2)
            for _ in range(rounds):
                started = time.perf_counter()
                report = verify_redecide(bank.app, store)
                redecide_rates.append(report.commands / (time.perf_counter() - started))
                if not report.ok or report.commands != commands:
                    raise RuntimeError(f"re-decision failed: {report.mismatches[:3]}")
                steps.advance(task, 1, force=True)
                started = time.perf_counter()
                replayed = verify_replay(bank.app, store)
                replay_rates.append(replayed.events / (time.perf_counter() - started))
                steps.advance(task, 1, force=True)
            events = store.head_position()
            rejections = report.rejections
            store.close()
    finally:
        scratch.close()

    redecide = median(redecide_rates)
    replay = median(replay_rates)
    print_table(
        f"Re-decision of the bank example, embedded log, median of {rounds} rounds",
        ["check", "work", "rate/s"],
        [
            [
                "verify --redecide",
                f"{commands:,} commands ({rejections:,} rejected)",
                fmt_rate(redecide),
            ],
            ["verify --replay", f"{events:,} events", fmt_rate(replay)],
        ],
    )
    print_notes(
        [
            f"Re-decision runs at {fmt_ratio(ratio(redecide, replay))} of the replay's rate "
            f"(target {TARGET_COMMANDS_PER_S:,} commands/s).",
        ]
    )
    result = {
        "benchmark": "audit",
        "quick": args.quick,
        "commands": commands,
        "accounts": accounts,
        "events": events,
        "rounds": rounds,
        "redecide_commands_per_s": redecide,
        "replay_events_per_s": replay,
        "redecide_over_replay": ratio(redecide, replay),
        "targets": {
            "redecide_commands_per_s": verdict(round(redecide), TARGET_COMMANDS_PER_S),
        },
        "environment": environment(),
    }
    emit_json(result, "bench-audit", args.json_out)


if __name__ == "__main__":
    main()
