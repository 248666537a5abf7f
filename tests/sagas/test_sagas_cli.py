"""The command line of sagas: `eventbook --store DIR demo shop` (both examples), then
`sagas list --json` (one object per saga with `id` and `status`), `sagas show`, and a parked
saga retried through `sagas retry` and `sagas run --once`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import eventbook as eb
from eventbook.examples import shop
from eventbook.sagas.records import SagaParked


def eventbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventbook.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_demo_shop_then_sagas_list_and_show(tmp_path: Path) -> None:
    store = str(tmp_path / "shop")
    done = eventbook("--store", store, "demo", "shop")
    assert done.returncode == 0, done.stderr
    assert "o2" in done.stdout and "credit limit exceeded" in done.stdout
    assert "t2: 200 from ann (bank A) to nobody (bank B): refunded" in done.stdout
    assert "together 1000" in done.stdout
    listed = eventbook("--store", store, "sagas", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    sagas = {row["id"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert {k: v["status"] for k, v in sagas.items()} == {
        "order-o1": "compensated",
        "order-o2": "completed",
    }
    shown = eventbook("--store", store, "sagas", "show", "order-o1")
    assert shown.returncode == 0 and "on CreditReleased" in shown.stdout
    again = eventbook("--store", store, "demo", "shop")
    assert again.returncode == 0
    assert eventbook("--store", store, "sagas", "list", "--json").stdout == listed.stdout
    missing = eventbook("--store", store, "sagas", "show", "order-o9")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    not_parked = eventbook("--store", store, "sagas", "retry", "order-o1")
    assert not_parked.returncode == 2 and "not parked" in not_parked.stderr


def test_a_parked_saga_is_retried_from_the_command_line(tmp_path: Path) -> None:
    store = str(tmp_path / "shop")
    with eb.open_store(store) as opened:
        engine = eb.Engine(shop.app, opened)
        engine.execute(shop.RegisterCustomer(customer_id="c1", credit_limit=100))
        engine.execute(shop.CreateOrder(order_id="o1", customer_id="c1", total=10))
        runner = eb.SagaRunner(engine, shop.order_saga)
        runner.run_until_idle()
        engine.execute(shop.CancelOrder(order_id="o1"))

        def down(command: eb.Command, *, command_id: str) -> None:
            raise eb.StoreUnavailable("customer service", "down")

        eb.SagaRunner(engine, shop.order_saga, execute=down).run_until_idle()
    listed = eventbook("--store", store, "sagas", "list", "--json")
    assert json.loads(listed.stdout)["status"] == "parked"
    assert eventbook("--store", store, "sagas", "retry", "order-o1").returncode == 0
    ran = eventbook(
        "--store", store, "sagas", "run", "--once", "--app", "eventbook.examples.shop:app"
    )
    assert ran.returncode == 0, ran.stderr
    listed = eventbook("--store", store, "sagas", "list", "--json")
    assert json.loads(listed.stdout)["status"] == "compensated"
    assert SagaParked.__struct_config__.tag == "SagaParked"
