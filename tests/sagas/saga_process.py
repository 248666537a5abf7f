"""The process the saga crash tests kill: it sends the shop's commands (with fixed ids, so a
run after a crash sends only what is missing) and runs the order saga until it has nothing left
to do, then prints "DONE".

    python saga_process.py STORE ORDERS CRASH_AT

CRASH_AT >= 0 makes the process exit at once (os._exit, as a kill -9 would: no cleanup) at the
runner's CRASH_AT-th step (a step: reactions decided, reactions committed, command executed);
-1 runs to the end. With ORDERS > 0 a customer with a limit of 1000 orders ORDERS times, totals
cycling 300, 900, 200, 100, and every fourth order is cancelled.
"""

from __future__ import annotations

import os
import sys

import eventbook as eb
from eventbook.examples import shop

TOTALS = (300, 900, 200, 100)


def commands(orders: int) -> list[tuple[str, eb.Command]]:
    out: list[tuple[str, eb.Command]] = [
        ("customer", shop.RegisterCustomer(customer_id="c1", credit_limit=1000))
    ]
    for i in range(orders):
        total = TOTALS[i % len(TOTALS)]
        out.append(
            (f"order-{i}", shop.CreateOrder(order_id=f"o{i}", customer_id="c1", total=total))
        )
        if i % 4 == 0:
            out.append((f"cancel-{i}", shop.CancelOrder(order_id=f"o{i}")))
    return out


def main() -> None:
    path, orders, crash_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    steps = {"n": 0}

    def step(_name: str) -> None:
        if steps["n"] == crash_at:
            os._exit(137)
        steps["n"] += 1

    with eb.open_store(path) as store:
        engine = eb.Engine(shop.app, store)
        runner = eb.SagaRunner(engine, shop.order_saga, on_step=step, batch_events=8)
        for command_id, command in commands(orders):
            engine.execute(command, command_id=command_id)
            runner.run_once()  # the saga runs while commands arrive
        runner.run_until_idle()
        os.write(1, f"DONE {steps['n']}\n".encode())


if __name__ == "__main__":
    main()
