"""NATS JetStream: the nats:// store beside raw nats-py publishes, on one server, in one run.

Scenarios (the server runs `sync_interval: always`: each message is fsynced before its ack):
  w1    1 writer, 1 event per commit: `store.append` vs a raw `js.publish` (waits for each ack)
  b100  1 writer, 100 events per commit: `store.append` of 100 events (one atomic batch) vs 100
        raw `js.publish_async` and then waiting for their 100 acks
The raw publishes carry the same bytes to the same subjects: each message is the payload the
store writes for that event. One throwaway server (`eventbook.testing.nats_server`, its store
directory under --dir) serves both; each measurement gets a fresh JetStream stream made with
the store's configuration. Each round runs every engine of every scenario once, in a rotating
order; rates are the median over rounds. Prints the tables, then one JSON line with the ratios
the issue sets targets for (w1 >= 0.7x the raw sync rate, b100 >= 0.5x the raw async rate).

    python benchmarks/bench_nats.py            # full run, about a minute
    python benchmarks/bench_nats.py --quick    # CI-sized
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client

import eventbook as eb
from common import (
    Scratch,
    Steps,
    base_parser,
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
from eventbook.backends.nats import subjects
from eventbook.backends.nats.connection import parse_url
from eventbook.backends.nats.payload import Payload, encode_payload
from eventbook.backends.nats.store import stream_config
from eventbook.testing.nats_server import NatsServer, nats_server_binary

SCENARIOS = {"w1": 1, "b100": 100}  # events per commit
STREAMS = 100  # the events go round this many streams (accounts)


def event_of(i: int) -> eb.NewEvent:
    return eb.NewEvent(
        f"account-{i % STREAMS}",
        "Deposited",
        {"account_id": f"a{i % STREAMS}", "amount": 100 + i % 900, "note": "salary"},
    )


def raw_messages(count: int, name: str) -> list[tuple[str, bytes]]:
    """The subjects and payloads the store would write for these events."""
    out = []
    for i in range(count):
        e = event_of(i)
        stored = Payload(  # with the nonce a commit's first message carries (its payload)
            e.type,
            e.data,
            e.metadata,
            None,
            str(uuid.uuid4()),
            1,
            1 + i // STREAMS,
            None,
            0,
            1,
            uuid.uuid4().hex,
        )
        out.append((subjects.event_subject(name, e.stream, None), encode_payload(stored)))
    return out


def run_ours(url: str, name: str, commits: int, size: int) -> float:
    """Commits per second of store.append."""
    with eb.open_store(url, stream=name) as store:
        batches = [[event_of(c * size + i) for i in range(size)] for c in range(commits)]
        store.append(batches[0])  # warm: the stream's first message, connection caches
        started = time.perf_counter()
        for batch in batches[1:]:
            store.append(batch)
        return (commits - 1) / (time.perf_counter() - started)


async def _peer(url: str, name: str, commits: int, size: int) -> float:
    nc = Client()
    await nc.connect(url)
    js = nc.jetstream()
    config = stream_config(parse_url(url, name))
    await nc.request(f"$JS.API.STREAM.CREATE.{name}", json.dumps(config).encode())
    messages = raw_messages(commits * size, name)
    groups = [messages[c * size : (c + 1) * size] for c in range(commits)]
    try:
        await js.publish(*groups[0][0])
        started = time.perf_counter()
        for group in groups[1:]:
            if size == 1:
                await js.publish(*group[0])
            else:
                acks = [await js.publish_async(subject, payload) for subject, payload in group]
                await asyncio.gather(*acks)
        return (commits - 1) / (time.perf_counter() - started)
    finally:
        await nc.close()


def run_peer(url: str, name: str, commits: int, size: int) -> float:
    return asyncio.run(_peer(url, name, commits, size))


ENGINES: dict[str, Callable[[str, str, int, int], float]] = {"eventbook": run_ours, "raw": run_peer}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 2)")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    commits = {"w1": 60 if args.quick else 1500, "b100": 6 if args.quick else 120}
    scratch = Scratch.create(args.dir, "bench-nats", args.keep)
    server = NatsServer(scratch.path("nats"), nats_server_binary())
    rates: dict[tuple[str, str], list[float]] = {}
    try:
        server.start()
        with Steps() as steps:
            task = steps.task("measuring", rounds * len(SCENARIOS) * len(ENGINES))
            for r in range(rounds):
                order = list(ENGINES)[r % 2 :] + list(ENGINES)[: r % 2]
                for scenario, size in SCENARIOS.items():
                    for engine in order:
                        name = f"B{r}_{scenario}_{engine}"
                        rate = ENGINES[engine](server.url, name, commits[scenario], size)
                        rates.setdefault((scenario, engine), []).append(rate)
                        steps.advance(task, force=True)
    finally:
        server.stop("term")
        scratch.close()

    def rate(scenario: str, engine: str) -> float:
        return median(rates[(scenario, engine)])

    rows = []
    for scenario, size in SCENARIOS.items():
        ours, raw = rate(scenario, "eventbook"), rate(scenario, "raw")
        rows.append(
            [
                scenario,
                "sync publish each" if size == 1 else "async publish, then the acks",
                fmt_rate(ours),
                fmt_rate(ours * size),
                fmt_rate(raw),
                fmt_rate(raw * size),
                fmt_ratio(ratio(ours, raw)),
            ]
        )
    print_table(
        f"NATS JetStream, durable (sync_interval: always), median of {rounds} rounds",
        [
            "scenario",
            "raw nats-py",
            "ours commits/s",
            "ours events/s",
            "raw commits/s",
            "raw events/s",
            "ours / raw",
        ],
        rows,
    )
    w1 = ratio(rate("w1", "eventbook"), rate("w1", "raw"))
    b100 = ratio(rate("b100", "eventbook"), rate("b100", "raw"))
    print_notes(
        [
            f"w1: one event per commit; {commits['w1']} commits per run.",
            f"b100: 100 events per commit; {commits['b100']} commits per run.",
        ]
    )
    result: dict[str, Any] = {
        "benchmark": "nats",
        "quick": args.quick,
        "rounds": rounds,
        "rates": {f"{s}_{e}": rate(s, e) for s, e in rates},
        "targets": {
            "w1_ours_over_raw_sync": verdict(w1, 0.7),
            "b100_ours_over_raw_async": verdict(b100, 0.5),
        },
        "environment": environment(),
    }
    emit_json(result, "bench-nats", args.json_out)


if __name__ == "__main__":
    main()
