"""The bank's balances in PostgreSQL (`eventbook.examples.bank_pg`) kept by the projection
runner against a real server, from a PostgreSQL store and from the embedded log: catch-up on
both the batch and the per-event path, live follow with read-your-writes, a blue/green rebuild,
a failing handler that keeps nothing of its batch, a table altered by hand, a lost connection,
two runners racing, and duplicate delivery."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

import eventbook as eb
from eventbook.examples import bank, bank_pg
from eventbook.examples.bank import Deposit, OpenAccount, Transfer, Withdraw
from eventbook.read_models import AlreadyApplied, ReadModel, open_read_models
from eventbook.read_models.postgres import PostgresReadModel

ACCOUNTS = [f"a{i}" for i in range(6)]
PG = "balances_pg"
PG_ONLY = dataclasses.replace(bank_pg.app, projections=[bank_pg.balances_pg])


@pytest.fixture(params=["postgres", "log"])
def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_url: str,
    drop_schema: Callable[[str], None],
) -> Iterator[eb.EventStore]:
    schema = f"rm_{random.randrange(16**8):08x}"
    if request.param == "postgres":
        opened = eb.open_store(pg_url, schema=schema)
    else:
        opened = eb.open_store(str(tmp_path / "bank"))
    yield opened
    opened.close()
    drop_schema(schema)
    drop_schema(f"{schema}_rm")
    drop_schema("eventbook_rm")


@pytest.fixture
def engine(store: eb.EventStore) -> eb.Engine:
    return eb.Engine(bank_pg.app, store)


def open_models(store: eb.EventStore, pg_url: str, kinds: set[str]) -> dict[str, ReadModel]:
    # a PostgreSQL store's read models go to its own database; the log's need a URL
    return open_read_models(
        store, kinds, postgres=None if store.url.startswith("postgres") else pg_url
    )


@pytest.fixture
def models(store: eb.EventStore, pg_url: str) -> Iterator[dict[str, ReadModel]]:
    opened = open_models(store, pg_url, {"sqlite", "postgres"})
    yield opened
    for model in opened.values():
        model.close()


def runner_of(
    store: eb.EventStore, models: dict[str, ReadModel], app: eb.Application = bank_pg.app, **kw
) -> eb.ProjectionRunner:
    kw.setdefault("batch_events", 25)
    return eb.ProjectionRunner(store, app, models, **kw)


def commands(seed: int, count: int) -> list[eb.Command]:
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


def fold(store: eb.EventStore, through: int | None = None) -> dict[str, tuple[int, int, int]]:
    """Every account's (balance, movements, last position), folded from the log."""
    view: dict[str, tuple[int, int, int]] = {}
    for rec in store.read_all():
        if through is not None and rec.position > through:
            break
        account = rec.stream.removeprefix("account-")
        if rec.type == "AccountOpened":
            view[account] = (0, 0, rec.position)
        elif rec.type in bank_pg.SIGNS:
            balance, moves, _ = view[account]
            view[account] = (
                balance + bank_pg.SIGNS[rec.type] * rec.data["amount"],
                moves + 1,
                rec.position,
            )
    return view


def pg_view(models: dict[str, ReadModel]) -> dict[str, tuple[int, int, int]]:
    rows = models["postgres"].query(  # type: ignore[attr-defined]
        "SELECT account_id, balance, movements, position FROM balances_pg"
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def sqlite_view(models: dict[str, ReadModel]) -> dict[str, tuple[int, int, int]]:
    rows = models["sqlite"].query(  # type: ignore[attr-defined]
        "SELECT account_id, balance, movements, position FROM balances"
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def status(runner: eb.ProjectionRunner, name: str) -> eb.projections.ProjectionStatus:
    return next(s for s in runner.status() if s.name == name)


def physical_tables(model: ReadModel) -> list[str]:
    assert isinstance(model, PostgresReadModel)
    with psycopg.connect(model.url.split("?")[0]) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", [model.schema]
            )
            if r[0] != "eventbook_projections"
        ]


@pytest.mark.parametrize("path", ["batch", "per-event"])
def test_catch_up_builds_the_view_a_fold_and_sqlite_agree_with(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel], path: str
) -> None:
    head = run(engine, commands(1, 150))
    app = bank_pg.app
    if path == "per-event":
        slow = dataclasses.replace(bank_pg.balances_pg, batch_handler=None)
        app = dataclasses.replace(bank_pg.app, projections=[*bank.app.projections, slow])
    runner = runner_of(store, models, app)
    assert runner.catch_up() > 0
    assert runner.position(PG) == head
    assert pg_view(models) == fold(store) == sqlite_view(models)
    assert bank_pg.balance(models["postgres"], "nobody") is None
    assert runner.catch_up() == 0


def test_live_follow_and_read_your_writes(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel]
) -> None:
    run(engine, commands(2, 10))
    runner = runner_of(store, models)
    runner.start(poll_seconds=0.01)
    try:
        for n in range(20):
            outcome = engine.execute(Deposit(account_id="a1", amount=n + 1))
            balance = bank_pg.balance(models["postgres"], "a1", min_position=outcome.position)
            assert balance == fold(store, outcome.position)["a1"][0]
    finally:
        runner.stop()
    with pytest.raises(eb.Timeout, match=PG):
        bank_pg.balance(models["postgres"], "a1", min_position=store.head_position() + 1)


def test_a_rebuild_serves_the_old_generation_until_the_switch(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel]
) -> None:
    run(engine, commands(4, 120))
    runner = runner_of(store, models, batch_events=20)
    runner.catch_up()
    expected = fold(store)
    [old] = models["postgres"].generations(PG)
    seen: list[int] = []

    def progress(position: int, head: int) -> None:
        assert models["postgres"].active(PG).generation == old.generation  # type: ignore[union-attr]
        assert pg_view(models) == expected
        seen.append(position)

    rebuilt = runner.rebuild(PG, progress)
    assert len(seen) > 3
    assert (rebuilt.generation, rebuilt.active) == (old.generation + 1, True)
    assert physical_tables(models["postgres"]) == [
        f"balances_pg__balances_pg__g{rebuilt.generation}"
    ]
    assert pg_view(models) == expected


def unlucky(tx, event: eb.Event, recorded: eb.RecordedEvent) -> None:
    if isinstance(event, bank.Deposited) and event.amount == 13:
        raise ValueError("unlucky 13")
    bank_pg.balances_pg.handler(tx, event, recorded)


def test_a_failing_handler_keeps_nothing_of_its_batch_and_stops_only_itself(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel]
) -> None:
    run(engine, commands(8, 40))
    failing_at = engine.execute(Deposit(account_id="a1", amount=13)).position
    head = run(engine, commands(9, 40)[len(ACCOUNTS) :])
    failing = dataclasses.replace(bank_pg.balances_pg, handler=unlucky, batch_handler=None)
    app = dataclasses.replace(bank_pg.app, projections=[*bank.app.projections, failing])
    runner = runner_of(store, models, app, attempts=2)
    runner.catch_up()
    stopped = status(runner, PG)
    assert (stopped.status, stopped.failed_position) == ("stopped", failing_at)
    assert stopped.position == failing_at - 1
    assert pg_view(models) == fold(store, failing_at - 1)
    assert status(runner, "balances").position == head
    assert sqlite_view(models) == fold(store)


def test_a_table_altered_by_hand_stops_the_projection_naming_it(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel]
) -> None:
    run(engine, commands(10, 20))
    runner = runner_of(store, models)
    runner.catch_up()
    model = models["postgres"]
    assert isinstance(model, PostgresReadModel)
    [gen] = model.generations(PG)
    with psycopg.connect(model.url.split("?")[0], autocommit=True) as conn:
        conn.execute(
            f'ALTER TABLE "{model.schema}"."balances_pg__balances_pg__g{gen.generation}" '
            "ADD COLUMN note text"
        )
    assert "altered" in (model.drift(bank_pg.balances_pg, gen.generation) or "")
    engine.execute(Deposit(account_id="a1", amount=5))
    runner.catch_up()
    stopped = status(runner, PG)
    assert stopped.status == "stopped"
    assert "balances_pg" in stopped.error and "rebuild" in stopped.error


def test_a_lost_connection_is_transient_and_the_next_batch_goes_through(
    store: eb.EventStore, engine: eb.Engine, models: dict[str, ReadModel], pg_url: str
) -> None:
    run(engine, commands(11, 30))
    runner = runner_of(store, models)
    runner.catch_up()
    model = models["postgres"]
    assert isinstance(model, PostgresReadModel)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [model.conn.info.backend_pid])
    run(engine, commands(12, 30)[len(ACCOUNTS) :])
    runner.catch_up()
    runner.catch_up()
    assert status(runner, PG).status == "running"
    assert status(runner, PG).position == store.head_position()
    assert pg_view(models) == fold(store)


def test_two_runners_never_double_apply_and_duplicates_are_refused(
    store: eb.EventStore, engine: eb.Engine, pg_url: str
) -> None:
    opened = [open_models(store, pg_url, {"postgres"}) for _ in range(2)]
    runners = [runner_of(store, m, PG_ONLY, batch_events=7) for m in opened]
    todo = commands(13, 200)
    errors: list[BaseException] = []
    stop = threading.Event()

    def follow(runner: eb.ProjectionRunner) -> None:
        try:
            while not stop.is_set():
                runner.catch_up()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=follow, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    try:
        for start in range(0, len(todo), 25):
            run(engine, todo[start : start + 25])
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert errors == []
    for runner in runners:
        runner.catch_up()
    assert pg_view(opened[0]) == fold(store)

    model = opened[0]["postgres"]
    [gen] = model.generations(PG)
    events = list(store.read_all())
    typed = [
        (r, r.as_(bank_pg.app.event_types[r.type]))
        for r in events
        if bank_pg.balances_pg.wants(r.type)
    ]
    with pytest.raises(AlreadyApplied):
        model.apply(bank_pg.balances_pg, gen.generation, typed, 0, events[-1].position)
    assert pg_view(opened[0]) == fold(store)
    for models in opened:
        for m in models.values():
            m.close()
