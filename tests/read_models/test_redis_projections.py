"""The bank's per-account Redis view (`eventbook.examples.bank_kv`) kept by the projection runner
against a real redis-server, on the memory store and on the embedded log: catch-up, live follow
with read-your-writes, blue/green rebuilds, reset, a failing handler that stops only its own
projection, two runners racing, and duplicate delivery."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import eventbook as eb
from eventbook.examples import bank, bank_kv
from eventbook.examples.bank import Deposit, OpenAccount, Transfer, Withdraw
from eventbook.projections import ProjectionStopped
from eventbook.read_models import AlreadyApplied, ReadModel, open_read_models
from eventbook.read_models.redis import RedisReadModel

ACCOUNTS = [f"a{i}" for i in range(6)]
KV = "account_kv"


@pytest.fixture(params=["memory", "log"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[eb.EventStore]:
    opened = eb.open_store("memory://" if request.param == "memory" else str(tmp_path / "bank"))
    yield opened
    opened.close()


@pytest.fixture
def engine(store: eb.EventStore) -> eb.Engine:
    return eb.Engine(bank_kv.app, store)


@pytest.fixture
def models(store: eb.EventStore, redis_url: str) -> Iterator[dict[str, ReadModel]]:
    opened = open_read_models(store, {"sqlite", "redis"}, redis=redis_url)
    yield opened
    for model in opened.values():
        model.close()


def runner_of(
    store: eb.EventStore, models: dict[str, ReadModel], app: eb.Application = bank_kv.app, **kw
) -> eb.ProjectionRunner:
    kw.setdefault("batch_events", 25)
    return eb.ProjectionRunner(store, app, models, **kw)


def commands(seed: int, count: int) -> list[eb.Command]:
    """Accounts opened, then deposits, withdrawals (some refused) and transfers."""
    rng = random.Random(seed)
    made: list[eb.Command] = [OpenAccount(account_id=a) for a in ACCOUNTS]
    for _ in range(count):
        a, b = rng.sample(ACCOUNTS, 2)
        made.append(
            rng.choice(
                [
                    Deposit(account_id=a, amount=rng.randint(1, 500)),
                    Withdraw(account_id=a, amount=rng.randint(1, 300)),
                    Transfer(from_account=a, to_account=b, amount=rng.randint(1, 200)),
                ]
            )
        )
    return made


def run(engine: eb.Engine, todo: list[eb.Command]) -> int:
    for command in todo:
        engine.execute(command)
    return engine.store.head_position()


def fold(store: eb.EventStore, through: int | None = None) -> dict[str, dict[str, int]]:
    """The per-account view folded from scratch from the log (up to `through`)."""
    view: dict[str, dict[str, int]] = {}
    sign = {"Deposited": 1, "TransferReceived": 1, "Withdrawn": -1, "TransferSent": -1}
    for rec in store.read_all():
        if through is not None and rec.position > through:
            break
        account = rec.stream.removeprefix("account-")
        if rec.type == "AccountOpened":
            view[account] = {"balance": 0, "movements": 0, "position": rec.position}
        elif rec.type in sign:
            row = view[account]
            row["balance"] += sign[rec.type] * rec.data["amount"]
            row["movements"] += 1
            row["position"] = rec.position
    return view


def kv_view(models: dict[str, ReadModel]) -> dict[str, dict[str, int]]:
    """Every account of the Redis view (and nothing else is in it)."""
    model = models["redis"]
    assert isinstance(model, RedisReadModel)
    keys = model.keys(KV)
    assert all(k.startswith("account:") for k in keys), keys
    found = {}
    for key in keys:
        account = key.removeprefix("account:")
        found[account] = bank_kv.account(model, account)
    return found


def sqlite_view(models: dict[str, ReadModel]) -> dict[str, dict[str, int]]:
    rows = models["sqlite"].query(  # type: ignore[attr-defined]
        "SELECT account_id, balance, movements, position FROM balances"
    )
    return {r[0]: {"balance": r[1], "movements": r[2], "position": r[3]} for r in rows}


def status(runner: eb.ProjectionRunner, name: str) -> eb.projections.ProjectionStatus:
    return next(s for s in runner.status() if s.name == name)


def generation_keys(client: redis.Redis, generation: int) -> list[str]:
    return client.keys(f"eventbook:{KV}:g{generation}:*")


# -- catching up and following --------------------------------------------------------------------


def test_catch_up_builds_the_view_that_a_fold_and_the_sqlite_balances_agree_with(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel]
) -> None:
    head = run(engine, commands(1, 150))
    runner = runner_of(store, models)

    applied = runner.catch_up()

    assert applied > 0
    assert runner.position(KV) == head
    assert status(runner, KV).lag == 0
    assert kv_view(models) == fold(store) == sqlite_view(models)
    assert bank_kv.account(models["redis"], "nobody") is None
    assert runner.catch_up() == 0  # nothing new: nothing applied


def test_live_follow_and_read_your_writes(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel]
) -> None:
    run(engine, commands(2, 20))
    runner = runner_of(store, models)
    runner.start(poll_seconds=0.01)
    try:
        for command in commands(3, 40)[len(ACCOUNTS) :]:
            outcome = engine.execute(command)
            runner.wait_for(outcome.position, [KV], timeout=5)
            assert kv_view(models) == fold(store, outcome.position)
        runner.wait_for(store.head_position(), timeout=5)
    finally:
        runner.stop()
    assert kv_view(models) == fold(store) == sqlite_view(models)
    with pytest.raises(eb.Timeout, match=KV):
        runner.wait_for(store.head_position() + 1, [KV], timeout=0.05)


# -- rebuilds and reset ---------------------------------------------------------------------------


def test_a_rebuild_serves_the_old_generation_until_the_switch_then_deletes_it(
    store: eb.EventStore,
    engine: eb.Engine,
    models: dict[str, ReadModel],
    redis_client: redis.Redis,
) -> None:
    run(engine, commands(4, 120))
    runner = runner_of(store, models, batch_events=20)
    runner.catch_up()
    expected = fold(store)
    [old] = models["redis"].generations(KV)
    seen_during: list[tuple[int, int]] = []

    def progress(position: int, head: int) -> None:
        # the old generation is the one queries see, whole, while the new one fills
        assert models["redis"].active_generation(KV) == old.generation
        assert kv_view(models) == expected
        new = [g for g in models["redis"].generations(KV) if not g.active]
        assert [g.position for g in new] == [position]
        seen_during.append((position, len(generation_keys(redis_client, new[0].generation))))

    rebuilt = runner.rebuild(KV, progress)

    assert len(seen_during) > 3
    assert seen_during[-1][1] == len(ACCOUNTS)
    assert (rebuilt.generation, rebuilt.active) == (old.generation + 1, True)
    assert generation_keys(redis_client, old.generation) == []
    assert [g.generation for g in models["redis"].generations(KV)] == [rebuilt.generation]
    assert kv_view(models) == expected


def test_a_version_bump_rebuilds_beside_and_switches(
    store: eb.EventStore,
    engine: eb.Engine,
    models: dict[str, ReadModel],
    redis_client: redis.Redis,
) -> None:
    run(engine, commands(5, 60))
    runner_of(store, models).catch_up()
    [old] = models["redis"].generations(KV)
    run(engine, commands(6, 30)[len(ACCOUNTS) :])

    bumped = dataclasses.replace(bank_kv.account_kv, version=2)
    app = dataclasses.replace(bank_kv.app, projections=[*bank.app.projections, bumped])
    runner = runner_of(store, models, app)
    runner.catch_up()

    [new] = models["redis"].generations(KV)
    assert (new.version, new.active, new.position) == (2, True, store.head_position())
    assert new.generation == old.generation + 1
    assert generation_keys(redis_client, old.generation) == []
    assert kv_view(models) == fold(store)


def test_reset_forgets_the_view_and_the_next_catch_up_builds_it_again(
    store: eb.EventStore,
    engine: eb.Engine,
    models: dict[str, ReadModel],
    redis_client: redis.Redis,
) -> None:
    run(engine, commands(7, 50))
    runner = runner_of(store, models)
    runner.catch_up()

    runner.reset(KV)

    assert models["redis"].generations(KV) == []
    assert kv_view(models) == {}
    assert redis_client.keys(f"eventbook:{KV}:g*") == []
    assert status(runner, KV).status == "new"
    assert status(runner, "balances").position == store.head_position()  # untouched
    runner.catch_up()
    assert kv_view(models) == fold(store) == sqlite_view(models)


# -- a failing handler ----------------------------------------------------------------------------


def unlucky(tx, event: eb.Event, recorded: eb.RecordedEvent) -> None:
    if isinstance(event, bank.Deposited) and event.amount == 13:
        raise ValueError("unlucky 13")
    bank_kv.account_kv.handler(tx, event, recorded)


def test_a_failing_handler_stops_its_projection_while_the_sqlite_ones_run_on(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel]
) -> None:
    run(engine, commands(8, 40))
    failing_at = engine.execute(Deposit(account_id="a1", amount=13)).position
    head = run(engine, commands(9, 40)[len(ACCOUNTS) :])
    failing = dataclasses.replace(bank_kv.account_kv, handler=unlucky)
    app = dataclasses.replace(bank_kv.app, projections=[*bank.app.projections, failing])
    runner = runner_of(store, models, app, attempts=2)

    runner.catch_up()

    stopped = status(runner, KV)
    assert (stopped.status, stopped.failed_position) == ("stopped", failing_at)
    assert "ValueError: unlucky 13" in stopped.error
    assert stopped.position == failing_at - 1
    assert kv_view(models) == fold(store, failing_at - 1)  # nothing of the failing batch kept
    for name in ("balances", "passbook"):
        assert (status(runner, name).status, status(runner, name).position) == ("running", head)
    assert sqlite_view(models) == fold(store)
    with pytest.raises(ProjectionStopped, match=f"stopped at position {failing_at}"):
        runner.wait_for(head, [KV], timeout=1)

    # the rest keeps running, live too; the stopped one stays where it stopped
    runner.start(poll_seconds=0.01)
    try:
        outcome = engine.execute(Deposit(account_id="a2", amount=7))
        runner.wait_for(outcome.position, ["balances", "passbook"], timeout=5)
    finally:
        runner.stop()
    assert sqlite_view(models) == fold(store)
    assert status(runner, KV).position == failing_at - 1

    # fixed and reset, it is built again from position 0
    fixed = runner_of(store, models)
    fixed.reset(KV)
    fixed.catch_up()
    assert status(fixed, KV).status == "running"
    assert kv_view(models) == fold(store)


# -- two runners, duplicate delivery -------------------------------------------------------------

KV_ONLY = dataclasses.replace(bank_kv.app, projections=[bank_kv.account_kv])


def test_a_runner_that_loses_the_race_applies_nothing(
    store: eb.EventStore, engine: eb.Engine, redis_url: str
) -> None:
    """Runner B is inside its first batch when runner A applies everything: B's EXEC is refused,
    it finds the checkpoint moved (AlreadyApplied) and leaves that stretch to A."""
    run(engine, commands(10, 80))
    inside, a_done = threading.Event(), threading.Event()

    def slow(tx, event: eb.Event, recorded: eb.RecordedEvent) -> None:
        if not inside.is_set():
            inside.set()
            assert a_done.wait(10)
        bank_kv.account_kv.handler(tx, event, recorded)

    app_b = dataclasses.replace(
        KV_ONLY, projections=[dataclasses.replace(bank_kv.account_kv, handler=slow)]
    )
    models_a = open_read_models(store, {"redis"}, redis=redis_url)
    models_b = open_read_models(store, {"redis"}, redis=redis_url)
    runner_a = runner_of(store, models_a, KV_ONLY, batch_events=1000)
    runner_b = runner_of(store, models_b, app_b, batch_events=1000)
    runner_a.catch_up()  # both start from an existing generation
    run(engine, commands(11, 80)[len(ACCOUNTS) :])
    applied_b: list[int] = []
    thread = threading.Thread(target=lambda: applied_b.append(runner_b.catch_up()))
    thread.start()
    try:
        assert inside.wait(10)
        applied_a = runner_a.catch_up()
    finally:
        a_done.set()
        thread.join(10)

    assert applied_a > 0
    assert applied_b == [0]
    assert runner_b.catch_up() == 0
    assert kv_view(models_a) == fold(store)
    for model in (*models_a.values(), *models_b.values()):
        model.close()


def test_two_runners_following_the_same_log_never_double_apply(
    store: eb.EventStore, engine: eb.Engine, redis_url: str
) -> None:
    opened = [open_read_models(store, {"redis"}, redis=redis_url) for _ in range(2)]
    runners = [runner_of(store, m, KV_ONLY, batch_events=7) for m in opened]
    todo = commands(12, 240)
    errors: list[BaseException] = []

    def follow(runner: eb.ProjectionRunner, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                runner.catch_up()
        except BaseException as exc:
            errors.append(exc)

    stop = threading.Event()
    threads = [threading.Thread(target=follow, args=(r, stop)) for r in runners]
    for t in threads:
        t.start()
    try:
        for start in range(0, len(todo), 30):
            run(engine, todo[start : start + 30])
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == []
    for runner in runners:
        runner.catch_up()
        assert runner.position(KV) == store.head_position()
    assert kv_view(opened[0]) == fold(store)
    for models in opened:
        for model in models.values():
            model.close()


def test_duplicate_delivery_is_harmless(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel]
) -> None:
    run(engine, commands(13, 60))
    runner = runner_of(store, models)
    runner.catch_up()
    expected = kv_view(models)
    model = models["redis"]
    [gen] = model.generations(KV)
    events = list(store.read_all())
    typed = [
        (r, r.as_(bank_kv.app.event_types[r.type]))
        for r in events
        if bank_kv.account_kv.wants(r.type)
    ]

    for after, through, part in [
        (0, events[-1].position, typed),  # everything again
        (events[9].position, events[20].position, typed[5:15]),  # a stretch in the middle
        (gen.position - 1, gen.position, typed[-1:]),  # the last event
    ]:
        with pytest.raises(AlreadyApplied):
            model.apply(bank_kv.account_kv, gen.generation, part, after, through)

    # a second runner over the same read models, and the same one again
    assert runner_of(store, models).catch_up() == 0
    assert runner.catch_up() == 0
    assert kv_view(models) == expected == fold(store)
    assert model.generations(KV)[0].position == store.head_position()
