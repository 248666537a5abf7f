"""A relay or a consumer that runs until it is killed (for test_outbox_kill9.py).

argv: relay STORE NATS_URL CHECKPOINT SEED
      consumer NATS_URL DATABASE SEED

The relay opens the embedded store read-only (the test process is its writer) and publishes
to NATS with a batch size SEED chooses. The consumer applies each event into the `effects`
table (no unique key: a double application shows as two rows), with a pause SEED chooses
inside the transaction so that kills land there too. Both print `READY` once running.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time

import eventbook as eb
from eventbook.outbox import Consumer, NatsBroker, Relay


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def relay(store_path: str, url: str, checkpoint: str, seed: int) -> None:
    rng = random.Random(seed)
    with eb.open_store(store_path, readonly=True) as store:
        broker = NatsBroker(url)
        runner = Relay(
            store,
            broker,
            checkpoint,
            batch_events=rng.choice([1, 3, 20, 200]),
            checkpoint_seconds=rng.choice([0.0, 0.01, 0.2]),
            retry_seconds=0.05,
        )
        say("READY")
        runner.run(idle_wait=0.05)


def consumer(url: str, database: str, seed: int) -> None:
    rng = random.Random(seed)
    pause = rng.choice([0.0, 0.0002, 0.001])

    def apply(db: sqlite3.Connection, event: eb.RecordedEvent) -> None:
        db.execute(
            "INSERT INTO effects (event_id, stream, version, position) VALUES (?, ?, ?, ?)",
            (event.id, event.stream, event.version, event.position),
        )
        if pause:
            time.sleep(pause)

    with sqlite3.connect(database) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS effects "
            "(event_id TEXT, stream TEXT, version INTEGER, position INTEGER)"
        )
    broker = NatsBroker(url)
    runner = Consumer(
        broker,
        "effects",
        apply,
        database,
        workers=rng.choice([1, 2, 4]),
        fetch_count=rng.choice([1, 10, 100]),
        synchronous="NORMAL",  # a kill of the process loses nothing committed
    )
    say("READY")
    runner.run(idle_wait=0.05)


if __name__ == "__main__":
    if sys.argv[1] == "relay":
        relay(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1] == "consumer":
        consumer(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown role {sys.argv[1]!r}")
