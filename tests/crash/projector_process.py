"""A projector that keeps the bank's read models up to date until it is killed (for
test_projection_kill9.py).

argv: STORE MODE SEED. It opens the store read-only (the test process is the writer), opens the
SQLite read models in the store's directory and catches up `balances` and `passbook` over and
over, in small batches; SEED chooses their size and a pause after each handler call (mostly a
little sleep), so that a kill at a random moment usually lands in a batch's transaction.

MODE "exact": the SQLite read model as shipped (handler changes and checkpoint in one
transaction). MODE "split": the negative control's `SplitCheckpointReadModel` from the test
file, which commits them in two transactions and prints `WINDOW` between them.

Prints `READY` once the read models are open, and `CAUGHT N` each time every projection has
reached position N.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time

import eventbook as eb
from eventbook.examples import bank
from eventbook.projections import Projection
from eventbook.read_models import open_read_models


def slowed(projection: Projection, pause: float) -> Projection:
    """The same projection (same name, version, tables), with a pause after each event."""
    handler = projection.handler

    def slow_handler(tx, event, recorded) -> None:
        handler(tx, event, recorded)
        if pause:
            time.sleep(pause)

    batch_handler = projection.batch_handler
    if batch_handler is None:
        return dataclasses.replace(projection, handler=slow_handler)

    def slow_batch(tx, batch) -> None:  # the fast path, as slow per event as the other
        batch = list(batch)  # a raw batch is read as it is iterated: count it here
        batch_handler(tx, batch)
        if pause:
            time.sleep(pause * len(batch))

    return dataclasses.replace(projection, handler=slow_handler, batch_handler=slow_batch)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    store_path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    pause = rng.choice([0.0, 0.00005, 0.0001, 0.0003])
    app = dataclasses.replace(
        bank.app, projections=[slowed(p, pause) for p in bank.app.projections]
    )
    with eb.open_store(store_path, readonly=True) as store:
        if mode == "exact":
            models = open_read_models(store, {"sqlite"})
        elif mode == "split":
            from test_projection_kill9 import SplitCheckpointReadModel

            model = SplitCheckpointReadModel(store.root / "read_models.sqlite")
            model.window_seconds = 0.5
            models = {"sqlite": model}
        else:
            raise SystemExit(f"unknown mode {mode!r}")
        runner = eb.ProjectionRunner(
            store, app, models, batch_events=rng.choice([1, 2, 5, 17, 50, 200])
        )
        names = sorted(runner.projections)
        say("READY")
        while True:
            head = store.head_position()
            rng.shuffle(names)  # either projection may be the one a kill interrupts
            runner.catch_up(names)
            say(f"CAUGHT {head}")
            store.wait_for_append(head, 0.05)


if __name__ == "__main__":
    main()
