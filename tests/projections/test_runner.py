"""The projection runner on both stores (memory and the embedded log), with the bank's
`balances` and `passbook` projections in SQLite: duplicate delivery, rebuilds under appends,
read-your-writes, lag, failing handlers, hand-altered tables, unknown names and blue/green
version bumps. The crash side (kill -9 of the projector) is tests/crash/test_projection_kill9.py.
"""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import eventbook as eb
from eventbook.examples import bank
from eventbook.projections.runner import ProjectionStopped
from eventbook.read_models import AlreadyApplied, ReadModel, SqliteReadModel, open_read_models

ACCOUNTS = 8
PLUS = {"Deposited", "TransferReceived"}
MINUS = {"Withdrawn", "TransferSent"}


class Clock:
    """The store's clock (recorded_at) and the runner's (lag_seconds): moves only when told."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


# -- helpers -----------------------------------------------------------------------------------


def random_command(rng: random.Random) -> eb.Command:
    account = f"a{rng.randrange(ACCOUNTS)}"
    r = rng.random()
    if r < 0.03:
        return bank.OpenAccount(account_id=account)  # rejected: already open
    if r < 0.45:
        return bank.Deposit(account_id=account, amount=rng.randint(1, 500))
    if r < 0.70:
        return bank.Withdraw(account_id=account, amount=rng.randint(1, 900))
    other = f"a{rng.randrange(ACCOUNTS)}"
    return bank.Transfer(from_account=account, to_account=other, amount=rng.randint(1, 700))


def bank_engine(store: eb.EventStore, commands: int, seed: int = 7) -> eb.Engine:
    engine = eb.Engine(bank.app, store)
    for a in range(ACCOUNTS):
        engine.execute(bank.OpenAccount(account_id=f"a{a}"))
    rng = random.Random(seed)
    for _ in range(commands):
        engine.execute(random_command(rng))
    return engine


class Writer:
    """Appends bank commands through the engine in a thread until stopped."""

    def __init__(self, engine: eb.Engine, seed: int = 11) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.done = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            self.engine.execute(random_command(self.rng))
            self.count += 1
            time.sleep(0.0002)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=30)


def fold(store: eb.EventStore, through: int) -> tuple[dict[str, tuple], list[tuple]]:
    """The balances and passbook rows of the log up to `through`, folded here directly."""
    balances: dict[str, list[int]] = {}
    passbook: list[tuple] = []
    for rec in store.read_all(after=0, limit=through):
        account = rec.stream.removeprefix("account-")
        if rec.type == "AccountOpened":
            balances[account] = [0, 0, rec.position]
        elif rec.type in PLUS | MINUS:
            amount = rec.data["amount"] if rec.type in PLUS else -rec.data["amount"]
            row = balances[account]
            row[0] += amount
            row[1] += 1
            row[2] = rec.position
            passbook.append(
                (rec.position, account, rec.type, amount, row[0], rec.recorded_at.isoformat())
            )
    return {a: tuple(v) for a, v in balances.items()}, passbook


def balances_of(model: ReadModel) -> dict[str, tuple]:
    assert isinstance(model, SqliteReadModel)
    rows = model.query("SELECT account_id, balance, movements, position FROM balances")
    return {r[0]: tuple(r[1:]) for r in rows}


def passbook_of(model: ReadModel) -> list[tuple]:
    assert isinstance(model, SqliteReadModel)
    return [tuple(r) for r in model.query("SELECT * FROM passbook ORDER BY position")]


def assert_matches_log(store: eb.EventStore, model: ReadModel, runner: eb.ProjectionRunner) -> None:
    """Each table equals the fold of the log up to its projection's checkpoint."""
    assert balances_of(model) == fold(store, runner.position("balances"))[0]
    assert passbook_of(model) == fold(store, runner.position("passbook"))[1]


def status_of(runner: eb.ProjectionRunner, name: str):
    return next(s for s in runner.status() if s.name == name)


def with_balances(handler=None, version: int = 1) -> eb.Application:
    """The bank with its `balances` projection's handler or version replaced."""
    changed = dataclasses.replace(  # a replaced handler replaces the batch fast path too
        bank.balances,
        handler=handler or bank.balances.handler,
        batch_handler=None if handler else bank.balances.batch_handler,
        version=version,
    )
    return dataclasses.replace(bank.app, projections=[changed, bank.passbook])


def wanted_events(store: eb.EventStore) -> int:
    """How many events the two projections handle in all (each event counted per projection)."""
    return sum(bank.balances.wants(r.type) + bank.passbook.wants(r.type) for r in store.read_all())


# -- duplicate delivery ------------------------------------------------------------------------


def test_a_batch_delivered_twice_is_applied_once(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_engine(store, 300)
    runner = eb.ProjectionRunner(store, bank.app, models, batch_events=16)
    runner.catch_up()
    model = models["sqlite"]
    before = balances_of(model), passbook_of(model)
    for projection in (bank.balances, bank.passbook):
        gen = next(g for g in model.generations(projection.name) if g.active)
        after = gen.position - 16
        batch = [
            (r, runner._typed(r))
            for r in store.read_all(after=after, limit=16)
            if projection.wants(r.type)
        ]
        assert batch
        with pytest.raises(AlreadyApplied, match=f"no longer at {after}"):
            model.apply(projection, gen.generation, batch, after, gen.position)
        assert next(g for g in model.generations(projection.name) if g.active) == gen
    assert (balances_of(model), passbook_of(model)) == before
    assert_matches_log(store, model, runner)


def slowed(app: eb.Application, pause: float) -> eb.Application:
    def slow(projection: eb.Projection) -> eb.Projection:
        def handler(tx, event, recorded) -> None:
            projection.handler(tx, event, recorded)
            time.sleep(pause)

        return dataclasses.replace(projection, handler=handler, batch_handler=None)

    return dataclasses.replace(app, projections=[slow(p) for p in app.projections])


def counting(apply, collisions: list[str]):
    """`apply`, noting each batch that another runner had applied first."""

    def counted(projection, *args) -> None:
        try:
            apply(projection, *args)
        except AlreadyApplied:
            collisions.append(projection.name)
            raise

    return counted


def test_two_runners_racing_apply_each_event_once(store: eb.EventStore, tmp_path: Path) -> None:
    """Two runners with their own connections to one read model catch up at the same time:
    every batch is kept by exactly one of them (the other gets AlreadyApplied and stands back),
    so the events applied add up to the events there are."""
    path = str(tmp_path / "shared.sqlite")
    a_models = open_read_models(store, {"sqlite"}, sqlite=path)
    b_models = open_read_models(store, {"sqlite"}, sqlite=path)
    try:
        app = slowed(bank.app, 0.0001)
        a = eb.ProjectionRunner(store, app, a_models, batch_events=5)
        b = eb.ProjectionRunner(store, app, b_models, batch_events=5)
        a.catch_up()  # both generations exist before the race
        bank_engine(store, 400)
        collisions: list[str] = []
        for opened in (a_models, b_models):
            opened["sqlite"].apply = counting(opened["sqlite"].apply, collisions)  # type: ignore[method-assign]
        applied: dict[str, int] = {}
        start = threading.Barrier(2)

        def run(name: str, runner: eb.ProjectionRunner) -> None:
            start.wait()
            applied[name] = runner.catch_up()

        threads = [threading.Thread(target=run, args=x) for x in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        finished = a.catch_up() + b.catch_up()  # whoever stood back: finish
        assert sum(applied.values()) + finished == wanted_events(store)
        # the runner that lost a race stood back: no projection was stopped by a second run
        # of a handler over rows that are there already (a duplicate key)
        assert [(s.status, s.error) for s in a.status()] == [("running", "")] * 2
        assert a.position("balances") == a.position("passbook") == store.head_position()
        assert_matches_log(store, a_models["sqlite"], a)
        assert_matches_log(store, b_models["sqlite"], b)
        assert collisions, "the runners never delivered the same batch twice: nothing was tested"
    finally:
        a_models["sqlite"].close()
        b_models["sqlite"].close()


# -- rebuilds ----------------------------------------------------------------------------------


def test_a_rebuild_while_appends_continue_converges_to_the_live_model(
    store: eb.EventStore, models: dict[str, ReadModel], tmp_path: Path
) -> None:
    engine = bank_engine(store, 1500)
    runner = eb.ProjectionRunner(store, bank.app, models, batch_events=50)
    runner.start(poll_seconds=0.01)
    writer = Writer(engine)
    try:
        time.sleep(0.05)
        started_at = store.head_position()
        rebuilt = runner.rebuild("balances")
        assert rebuilt.active and rebuilt.generation == 2 and rebuilt.status == "running"
        assert rebuilt.position > started_at, "no append came in during the rebuild"
        time.sleep(0.05)
    finally:
        writer.stop()
    head = store.head_position()
    runner.wait_for(head, timeout=10)
    runner.stop()
    live = balances_of(models["sqlite"]), passbook_of(models["sqlite"])
    # a fresh rebuild into a read model of its own, now that the writer has stopped
    fresh_models = open_read_models(store, {"sqlite"}, sqlite=str(tmp_path / "fresh.sqlite"))
    try:
        eb.ProjectionRunner(store, bank.app, fresh_models).rebuild("balances")
        assert balances_of(fresh_models["sqlite"]) == live[0]
    finally:
        fresh_models["sqlite"].close()
    assert live == fold(store, head)
    # and once more in place: the same rows
    runner.rebuild("balances")
    assert balances_of(models["sqlite"]) == live[0]


def test_a_version_bump_builds_beside_the_old_generation_then_switches(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_engine(store, 300)
    model = models["sqlite"]
    eb.ProjectionRunner(store, bank.app, models).catch_up()
    served = balances_of(model)
    runner = eb.ProjectionRunner(store, with_balances(version=2), models, batch_events=40)
    seen = []

    def during_build(position: int, head: int) -> None:
        gens = model.generations("balances")
        if any(not g.active for g in gens):
            active = next(g for g in gens if g.active)
            building = next(g for g in gens if not g.active)
            assert (active.version, building.version) == (1, 2)
            assert balances_of(model) == served  # the old generation keeps serving
            state = status_of(runner, "balances")
            assert state.status == "rebuilding" and state.version == 1
            assert state.rebuilding is not None and state.rebuilding.position == position
            seen.append(position)

    runner.catch_up(progress=during_build)
    assert len(seen) > 2, seen
    (gen,) = model.generations("balances")
    assert gen.active and gen.version == 2 and gen.generation == 2
    assert gen.position == store.head_position()
    assert balances_of(model) == served
    (view,) = model.query("SELECT sql FROM sqlite_master WHERE type='view' AND name='balances'")
    assert "balances__balances__g2" in view[0]
    tables = {r[0] for r in model.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "balances__balances__g1" not in tables
    assert status_of(runner, "balances").status == "running"
    assert status_of(runner, "balances").version == 2


# -- read-your-writes and lag ------------------------------------------------------------------


def test_wait_for_gives_read_your_writes(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    engine = bank_engine(store, 50)
    runner = eb.ProjectionRunner(store, bank.app, models)
    runner.start(poll_seconds=0.01)
    try:
        for n in range(20):
            outcome = engine.execute(bank.Deposit(account_id="a1", amount=n + 1))
            runner.wait_for(outcome.position, timeout=5)
            (row,) = models["sqlite"].query(  # type: ignore[attr-defined]
                "SELECT balance, position FROM balances WHERE account_id='a1'"
            )
            assert row == (engine.state("account-a1").state.balance, outcome.position)
    finally:
        runner.stop()
    behind = runner.position("balances")
    outcome = engine.execute(bank.Deposit(account_id="a1", amount=1))
    with pytest.raises(eb.Timeout) as caught:
        runner.wait_for(outcome.position, timeout=0.05)
    assert str(caught.value) == (
        f"waited 0.05 s for position {outcome.position}: balances at {behind}, passbook at {behind}"
    )
    with pytest.raises(eb.Timeout, match="passbook at"):
        runner.wait_for(outcome.position, names=["passbook"], timeout=0)
    with pytest.raises(eb.InvalidInput, match="timeout must be"):
        runner.wait_for(outcome.position, timeout=-1)


def test_status_reports_lag_in_positions_and_seconds(tmp_path: Path) -> None:
    for url in ("memory://", tmp_path / "store"):
        clock = Clock()
        with eb.open_store(url, clock=clock) as store:
            models = open_read_models(store, {"sqlite"})
            try:
                engine = bank_engine(store, 20)
                runner = eb.ProjectionRunner(store, bank.app, models, clock=clock)
                state = status_of(runner, "balances")
                assert state.status == "new" and state.position == 0
                assert state.lag == store.head_position()
                runner.catch_up()
                assert [(s.lag, s.lag_seconds) for s in runner.status()] == [(0, 0.0), (0, 0.0)]
                clock.now += timedelta(seconds=30)
                first = engine.execute(bank.Deposit(account_id="a0", amount=5)).position
                clock.now += timedelta(seconds=12)
                engine.execute(bank.Transfer(from_account="a0", to_account="a1", amount=5))
                clock.now += timedelta(seconds=0.5)
                head = store.head_position()
                for s in runner.status():
                    assert s.position == first - 1 and s.lag == head - first + 1 == 3
                    assert s.lag_seconds == 12.5  # since the oldest event not yet applied
                runner.catch_up(["passbook"])
                assert status_of(runner, "passbook").lag == 0
                assert status_of(runner, "passbook").lag_seconds == 0.0
                assert status_of(runner, "balances").lag == 3
            finally:
                models["sqlite"].close()


# -- bad input ---------------------------------------------------------------------------------


def test_a_failing_handler_stops_its_projection_at_the_event_and_the_rest_keeps_running(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_engine(store, 100)
    poison = next(r.position for r in store.read_all(after=40) if r.type == "Deposited")
    failing = {"on": True}

    def handler(tx, event, recorded) -> None:
        if failing["on"] and recorded.position == poison:
            raise ValueError(f"cannot handle the event at {recorded.position}")
        bank.balances.handler(tx, event, recorded)

    runner = eb.ProjectionRunner(store, with_balances(handler), models, batch_events=25, attempts=2)
    runner.catch_up()
    head = store.head_position()
    state = status_of(runner, "balances")
    assert state.status == "stopped" and state.failed_position == poison
    assert state.position == poison - 1  # everything before it, nothing of it
    assert state.error == f"ValueError: cannot handle the event at {poison}"
    assert status_of(runner, "passbook").status == "running"
    assert status_of(runner, "passbook").position == head
    assert_matches_log(store, models["sqlite"], runner)
    with pytest.raises(ProjectionStopped, match=f"balances is stopped at position {poison}"):
        runner.wait_for(head, timeout=1)
    runner.wait_for(head, names=["passbook"], timeout=1)

    bank_engine(store, 20, seed=3)  # more events: passbook follows, balances stays stopped
    runner.catch_up()
    assert runner.position("balances") == poison - 1
    assert runner.position("passbook") == store.head_position()
    assert status_of(runner, "balances").status == "stopped"

    failing["on"] = False
    runner.reset("balances")  # clears the stop and the table: again from position 0
    assert status_of(runner, "balances").status == "new"
    runner.catch_up()
    assert status_of(runner, "balances").status == "running"
    assert runner.position("balances") == store.head_position()
    assert_matches_log(store, models["sqlite"], runner)


def test_an_event_that_does_not_decode_stops_the_projections_that_handle_it(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_engine(store, 30)
    bad = store.append([eb.NewEvent("account-zz", "AccountOpened", {"account_id": 5})])
    bank_engine(store, 30, seed=2)
    typed = dataclasses.replace(bank.balances, batch_handler=None)  # its raw batches: no decode
    app = dataclasses.replace(bank.app, projections=[typed, bank.passbook])
    runner = eb.ProjectionRunner(store, app, models, batch_events=10, attempts=1)
    runner.catch_up()  # does not raise: the others keep running
    state = status_of(runner, "balances")  # AccountOpened is one of its types
    assert state.status == "stopped" and state.failed_position == bad.first_position
    assert state.position == bad.first_position - 1
    assert state.error.startswith(f"UpcastError: event at position {bad.first_position}")
    state = status_of(runner, "passbook")  # it handles movements only
    assert state.status == "running" and state.position == store.head_position()
    assert_matches_log(store, models["sqlite"], runner)


def test_a_table_altered_by_hand_stops_the_projection_and_names_the_table(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_engine(store, 50)
    runner = eb.ProjectionRunner(store, bank.app, models)
    runner.catch_up()
    at = runner.position("balances")
    model = models["sqlite"]
    assert isinstance(model, SqliteReadModel)
    if model.path.startswith("file:"):  # the memory store's private database
        model.db.execute("ALTER TABLE balances__balances__g1 ADD COLUMN note TEXT")
    else:
        with sqlite3.connect(model.path) as db:
            db.execute("ALTER TABLE balances__balances__g1 ADD COLUMN note TEXT")
    bank_engine(store, 10, seed=5)
    runner.catch_up()
    state = status_of(runner, "balances")
    assert state.status == "stopped" and state.position == at and state.failed_position == at + 1
    assert "balances__balances__g1" in state.error and "altered" in state.error
    assert "eventbook projections rebuild balances" in state.error
    assert status_of(runner, "passbook").position == store.head_position()
    runner.rebuild("balances")
    state = status_of(runner, "balances")
    assert state.status == "running" and state.position == store.head_position()
    assert_matches_log(store, model, runner)


def test_an_unknown_projection_name_lists_the_known_ones(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    runner = eb.ProjectionRunner(store, bank.app, models)
    for call in (
        lambda: runner.rebuild("balance"),
        lambda: runner.reset("balance"),
        lambda: runner.catch_up(["balance"]),
        lambda: runner.wait_for(0, names=["balance"]),
        lambda: runner.position("balance"),
    ):
        with pytest.raises(eb.InvalidInput) as caught:
            call()
        assert str(caught.value) == (
            "no projection named 'balance' in the bank application; its projections: "
            "balances, passbook"
        )


class FlakyReadModel(SqliteReadModel):
    """Its database is 'locked' for the first `outages` applies: the target's trouble."""

    def __init__(self, path: str, outages: int) -> None:
        super().__init__(path)
        self.outages = outages

    def apply(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if self.outages:
            self.outages -= 1
            raise sqlite3.OperationalError("database is locked")
        super().apply(*args, **kwargs)


def test_an_unavailable_read_model_stops_nothing_and_is_tried_again(
    store: eb.EventStore, tmp_path: Path
) -> None:
    from eventbook.projections.runner import ReadModelUnavailable

    engine = eb.Engine(bank.app, store)
    engine.run("OpenAccount", {"account_id": "a1"})
    engine.run("Deposit", {"account_id": "a1", "amount": 5})
    model = FlakyReadModel(str(tmp_path / "flaky.sqlite"), outages=1)
    runner = eb.ProjectionRunner(store, bank.app, {"sqlite": model})
    with pytest.raises(ReadModelUnavailable, match="database is locked"):
        runner.catch_up()
    assert all(s.status != "stopped" for s in runner.status())
    runner.catch_up()
    assert model.query("SELECT account_id, balance FROM balances") == [("a1", 5)]
    assert [s.position for s in runner.status()] == [2, 2]
    model.close()


def test_the_batch_fast_path_leaves_what_the_event_handler_leaves(
    store: eb.EventStore, tmp_path: Path
) -> None:
    bank_engine(store, 300)
    per_event = dataclasses.replace(bank.balances, batch_handler=None)
    folded = {}
    for name, projection, size in (
        ("batch", bank.balances, 37),
        ("events", per_event, 37),
        ("one", bank.balances, 1),
    ):
        model = SqliteReadModel(str(tmp_path / f"{name}.sqlite"))
        app = dataclasses.replace(bank.app, projections=[projection])
        eb.ProjectionRunner(store, app, {"sqlite": model}, batch_events=size).catch_up()
        folded[name] = model.query("SELECT * FROM balances ORDER BY account_id")
        model.close()
    assert folded["batch"] == folded["events"] == folded["one"]
    assert folded["batch"]


def test_a_query_can_wait_for_its_own_write(store: eb.EventStore) -> None:
    models = open_read_models(store, {"sqlite"})
    runner = eb.ProjectionRunner(store, bank.app, models)
    engine = eb.Engine(bank.app, store)
    engine.run("OpenAccount", {"account_id": "a1"})
    runner.start(poll_seconds=0.01)
    try:
        outcome = engine.run("Deposit", {"account_id": "a1", "amount": 9})
        rows = models["sqlite"].query(
            "SELECT balance FROM balances WHERE account_id = ?",
            ("a1",),
            min_position=outcome.position,
            projections=["balances"],
            timeout=5,
        )
        assert rows == [(9,)]
    finally:
        runner.stop()
    with pytest.raises(eb.Timeout, match=f"for position {outcome.position + 1}: balances at"):
        models["sqlite"].query(
            "SELECT 1", min_position=outcome.position + 1, projections=["balances"], timeout=0.05
        )
    with pytest.raises(eb.InvalidInput, match="name the projection"):
        models["sqlite"].query("SELECT 1", min_position=1)
    models["sqlite"].close()
