"""The outbox relay: publish lag from the embedded store to NATS JetStream under a steady load.

  writer      `--writers` threads append one event per durable commit (sync=always, group
              commit) to an embedded log, paced together to `--rate` appends/s (default
              5,000) for `--seconds` (default 10; --quick 2).
  relay       eventbook.outbox.Relay following the log, publishing to a NATS server started
              for the run (eventbook.testing.nats_server, sync_interval: always: every message
              fsynced before its acknowledgement) as JetStream atomic batches (one fsync per
              batch), its checkpoint in a file.
  subscriber  a JetStream ordered consumer on `outbox.>` in its own connection and thread;
              publish lag = the time it receives a message minus the event's recorded_at.

The writer, the relay, the subscriber and the server share this machine. Prints a table, then
one JSON line with the figures the issue sets targets for (p99 lag < 200 ms at 5,000/s).

    python benchmarks/bench_relay.py            # 10 s at 5,000 appends/s
    python benchmarks/bench_relay.py --quick    # 2 s
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import eventbook as eb
from common import (
    Scratch,
    base_parser,
    check_store_url,
    emit_json,
    environment,
    err,
    fmt_rate,
    percentile,
    print_notes,
    print_table,
    verdict,
)
from eventbook.outbox import NatsBroker, Relay
from eventbook.testing.nats_server import NatsServer, nats_server, nats_server_binary

DRAIN_SECONDS = 60.0  # after the last append, for every event to reach the subscriber
STREAMS = 100
MARK = {True: "[green]met[/]", False: "[red]NOT met[/]", None: "-"}


class Subscriber:
    """A JetStream ordered consumer on the outbox subjects; records (position, receive time)."""

    def __init__(self, url: str, subjects: str) -> None:
        self.received: dict[int, float] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc: Any = None
        self.sub: Any = None
        asyncio.run_coroutine_threadsafe(self._start(url, subjects), self.loop).result(30)

    async def _start(self, url: str, subjects: str) -> None:
        import nats

        self.nc = await nats.connect(url)
        js = self.nc.jetstream()

        async def on_message(msg: Any) -> None:
            self.received[int(msg.headers["Eventbook-Position"])] = time.time()

        self.sub = await js.subscribe(subjects, cb=on_message, ordered_consumer=True)

    async def _close(self) -> None:
        await self.sub.unsubscribe()
        await self.nc.close()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def write(store: eb.EventStore, rate: int, seconds: float, writers: int) -> tuple[int, float]:
    """Append one event per commit from `writers` threads, paced to `rate` a second in all;
    returns (appends, seconds taken)."""
    interval = writers / rate
    per_thread = int(rate * seconds) // writers
    counts = [0] * writers

    def one(index: int) -> None:
        next_at = start + index * interval / writers
        stream = f"account-{index}"
        for n in range(per_thread):
            wait = next_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            store.append(
                [eb.NewEvent(f"{stream}{n % (STREAMS // writers + 1)}", "Deposited", {"n": n})]
            )
            counts[index] += 1
            next_at += interval

    start = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.monotonic() - start


@contextmanager
def server_for(sync: str) -> Iterator[NatsServer]:
    """The fixture's server (sync_interval: always), or one with NATS's own default (JetStream
    fsyncs every 2 minutes; a crash of the machine may lose acknowledged messages)."""
    if sync == "always":
        with nats_server() as server:
            yield server
        return
    folder = Path(tempfile.mkdtemp(prefix="eventbook-nats-"))
    store_dir = folder / "store"
    server = NatsServer(
        folder,
        nats_server_binary(),
        extra_config=f'jetstream {{ store_dir: "{store_dir}", sync_interval: "2m" }}',
    )
    try:
        server.start()
        yield server
    finally:
        server.stop("term")
        shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, scratch: Scratch) -> dict[str, Any]:
    with server_for(args.server_sync) as server:
        store = eb.open_store(scratch.path("log"))
        broker = NatsBroker(server.url)
        subscriber = Subscriber(server.url, f"{broker.subject_prefix}.>")
        relay = Relay(store, broker, scratch.path("relay.checkpoint")).start()
        try:
            err.print(
                f"appending {args.rate:,}/s for {args.seconds:g} s with {args.writers} writers"
            )
            appends, took = write(store, args.rate, args.seconds, args.writers)
            head = store.head_position()
            deadline = time.monotonic() + DRAIN_SECONDS
            while len(subscriber.received) < head and time.monotonic() < deadline:
                time.sleep(0.01)
            relay.stop()
            recorded = {e.position: e.recorded_at.timestamp() for e in store.read_all()}
            published = relay.published
            batches, fallbacks = broker.batches, broker.fallbacks
        finally:
            relay.stop()
            subscriber.close()
            broker.close()
            store.close()
    lags = sorted(
        (subscriber.received[p] - t) * 1000.0
        for p, t in recorded.items()
        if p in subscriber.received
    )
    return {
        "appends": appends,
        "append_seconds": took,
        "append_rate": appends / took,
        "received": len(lags),
        "unseen": head - len(lags),
        "published": published,
        "batches": batches,
        "duplicate_fallbacks": fallbacks,
        "lag_p50_ms": percentile(lags, 0.5),
        "lag_p90_ms": percentile(lags, 0.9),
        "lag_p99_ms": percentile(lags, 0.99),
        "lag_max_ms": percentile(lags, 1.0),
    }


def report(args: argparse.Namespace, scratch: Scratch, found: dict[str, Any]) -> None:
    targets = {
        "append_rate": verdict(round(found["append_rate"]), round(0.95 * args.rate)),
        "lag_p99_ms": verdict(round(found["lag_p99_ms"], 2), 200.0, at_most=True),
    }
    rows = [
        [
            "appends/s reached (target rate)",
            f"{fmt_rate(found['append_rate'])} ({args.rate:,})",
            f"≥ {0.95 * args.rate:,.0f}",
            MARK[targets["append_rate"]["met"]],
        ],
        [
            "events received by the subscriber",
            f"{found['received']:,} of {found['appends']:,}",
            "all",
            MARK[found["unseen"] == 0],
        ],
        ["publish lag p50 (ms)", f"{found['lag_p50_ms']:.2f}", "-", "-"],
        ["publish lag p90 (ms)", f"{found['lag_p90_ms']:.2f}", "-", "-"],
        [
            "publish lag p99 (ms)",
            f"{found['lag_p99_ms']:.2f}",
            "< 200",
            MARK[targets["lag_p99_ms"]["met"]],
        ],
        ["publish lag max (ms)", f"{found['lag_max_ms']:.2f}", "-", "-"],
        [
            "atomic batches (mean events each)",
            f"{found['batches']:,} ({found['published'] / max(1, found['batches']):.1f})",
            "-",
            "-",
        ],
    ]
    print_table(
        "Outbox relay: embedded log → NATS JetStream",
        ["measure", "value", "target", "met"],
        rows,
        1,
    )
    print_notes(
        [
            f"load: {args.writers} writer threads, one event per durable commit (sync=always, "
            f"group commit), {STREAMS} streams, paced to {args.rate:,}/s for {args.seconds:g} s.",
            "lag: receive time at a JetStream ordered consumer (its own connection) minus the "
            "event's recorded_at; the relay publishes what it finds, up to 1,000 events, as one "
            "JetStream atomic batch (stored with one sync); the server's JetStream "
            "sync_interval: "
            + (
                "always (every message fsynced before its acknowledgement)."
                if args.server_sync == "always"
                else "2m, NATS's default (a machine crash may lose acknowledged messages)."
            ),
            f"disk: {scratch.describe()['device']}.",
        ]
    )
    emit_json(
        {
            "benchmark": "relay",
            "environment": environment(),
            "settings": {
                "rate": args.rate,
                "seconds": args.seconds,
                "writers": args.writers,
                "server_sync": args.server_sync,
                "quick": args.quick,
            },
            "results": {k: round(v, 3) if isinstance(v, float) else v for k, v in found.items()},
            "targets": targets,
        },
        "relay",
        args.json_out,
    )


def parse() -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=5000, help="appends a second, all writers")
    parser.add_argument(
        "--seconds", type=float, default=None, help="how long to append (default 10; --quick 2)"
    )
    parser.add_argument("--writers", type=int, default=8, help="appending threads")
    parser.add_argument(
        "--server-sync",
        choices=["always", "default"],
        default="always",
        help="the NATS server's JetStream sync_interval: 'always' (the test fixture's: every "
        "message fsynced before its ack) or 'default' (NATS's own: every 2 minutes)",
    )
    args = parser.parse_args()
    check_store_url(parser, args.store_url)
    if args.store_url:
        parser.error("--store-url: this benchmark measures the embedded log only")
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    if args.rate < 1 or args.writers < 1 or args.seconds <= 0:
        parser.error("--rate and --writers must be at least 1, --seconds above 0")
    return args


def main() -> None:
    args = parse()
    scratch = Scratch.create(args.dir, "relay", args.keep)
    try:
        report(args, scratch, run(args, scratch))
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
