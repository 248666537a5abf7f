"""kill -9 of the projector at random points: the read model always equals a from-scratch fold
of the log up to its checkpoint (0 double-applied, 0 skipped).

The test process fills an embedded log with bank commands (deposits, withdrawals, transfers,
rejections, accounts opened along the way) and is its only writer. Each round it starts
projector_process.py, which opens the store read-only and catches up `balances` and `passbook`
into the SQLite read model beside the log, in small slow batches, and kills it with SIGKILL at a
random moment; in some rounds appends go on while the projector runs. After each kill both
tables are compared with a fold of the log, computed here without the projection handlers, up
to each projection's checkpoint.

The negative control runs the same loop with a read model that commits the handler's changes
and the checkpoint in two transactions, kills the projector between the two, and requires the
same check to catch it: the check is able to fail.

EVENTBOOK_PROJECTION_KILLS sets the rounds (default 20); EVENTBOOK_SEED replays the choices.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import eventbook as eb
from eventbook.examples import bank
from eventbook.projections import Projection
from eventbook.read_models import AlreadyApplied, Batch, SqliteReadModel, SqliteTx
from eventbook.read_models import open_read_models as open_models

PROJECTOR = Path(__file__).with_name("projector_process.py")
ACCOUNTS = 20
PLUS = {"Deposited", "TransferReceived"}
MINUS = {"Withdrawn", "TransferSent"}


class SplitCheckpointReadModel(SqliteReadModel):
    """NEGATIVE CONTROL, wrong on purpose: the handler's changes and the checkpoint are committed
    in two transactions, with a window between them (`WINDOW` is printed, then a pause) where a
    kill keeps the changes and loses the checkpoint, so the events are applied again later."""

    window_seconds = 0.0

    def apply(
        self, projection: Projection, generation: int, batch: Batch, after: int, through: int
    ) -> None:
        with self._transaction() as db:
            tx = SqliteTx(db, self._tables(projection, generation))
            for recorded, event in batch:
                projection.handler(tx, event, recorded)
        if batch and self.window_seconds:
            sys.stdout.write("WINDOW\n")
            sys.stdout.flush()
            time.sleep(self.window_seconds)
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE eventbook_projections SET position=? "
                "WHERE name=? AND generation=? AND position=?",
                (through, projection.name, generation, after),
            ).rowcount
            if updated != 1:
                raise AlreadyApplied(projection.name, generation, after)


# -- the workload ------------------------------------------------------------------------------


def random_command(rng: random.Random) -> eb.Command:
    """A bank command; about a fifth of them are rejected (overdrafts, unknown or same
    accounts, accounts opened twice)."""
    account = f"a{rng.randrange(ACCOUNTS)}"
    r = rng.random()
    if r < 0.04:
        return bank.OpenAccount(account_id=account)
    if r < 0.06:
        return bank.Deposit(account_id=f"ghost{rng.randrange(5)}", amount=1)
    if r < 0.45:
        return bank.Deposit(account_id=account, amount=rng.randint(1, 500))
    if r < 0.70:
        return bank.Withdraw(account_id=account, amount=rng.randint(1, 900))
    other = f"a{rng.randrange(ACCOUNTS)}"
    return bank.Transfer(from_account=account, to_account=other, amount=rng.randint(1, 700))


def run_commands(engine: eb.Engine, rng: random.Random, count: int) -> None:
    for _ in range(count):
        engine.execute(random_command(rng))


class Appender:
    """Appends bank commands through the engine in a thread until stopped."""

    def __init__(self, engine: eb.Engine, seed: int) -> None:
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
            time.sleep(0.002)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=30)


# -- the check ---------------------------------------------------------------------------------


def fold(store: eb.EventStore, through: int) -> tuple[dict[str, tuple], list[tuple]]:
    """The balances rows and the passbook rows that the log up to `through` makes, computed
    from the recorded events directly (not through the projection handlers)."""
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


def checkpoints(model: SqliteReadModel) -> tuple[dict[str, int], list[str]]:
    """The active generations' checkpoints, and the projections that are stopped."""
    found, stopped = {}, []
    for name in ("balances", "passbook"):
        active = [g for g in model.generations(name) if g.active]
        if active:
            found[name] = active[0].position
            if active[0].status != "running":
                stopped.append(f"{name}: stopped at {active[0].failed_position}: {active[0].error}")
    return found, stopped


def discrepancies(store: eb.EventStore) -> tuple[dict[str, int], list[str]]:
    """Each projection's checkpoint, and every way its table differs from the fold of the log
    up to that checkpoint (empty: exactly once)."""
    model = open_models(store, {"sqlite"})["sqlite"]
    assert isinstance(model, SqliteReadModel)
    try:
        at, problems = checkpoints(model)
        if "balances" in at:
            want, _ = fold(store, at["balances"])
            got = {
                r[0]: tuple(r[1:])
                for r in model.query(
                    "SELECT account_id, balance, movements, position FROM balances"
                )
            }
            for account in sorted(set(want) | set(got)):
                w, g = want.get(account), got.get(account)
                if w == g:
                    continue
                if g is None:
                    kind = "skipped (no row)"
                elif w is None:
                    kind = "applied past the checkpoint (a row the log does not make yet)"
                else:
                    kind = (
                        "double-applied" if g[1] > w[1] else "skipped" if g[1] < w[1] else "wrong"
                    )
                problems.append(
                    f"balances: account {account} {kind}: (balance, movements, position) "
                    f"{g} in the table, {w} from the log up to {at['balances']}"
                )
        if "passbook" in at:
            _, want_rows = fold(store, at["passbook"])
            got_rows = model.query("SELECT * FROM passbook ORDER BY position")
            want_by, got_by = {r[0]: r for r in want_rows}, {r[0]: tuple(r) for r in got_rows}
            beyond = sorted(set(got_by) - set(want_by))
            missing = sorted(set(want_by) - set(got_by))
            wrong = [p for p in sorted(set(got_by) & set(want_by)) if got_by[p] != want_by[p]]
            if beyond:
                problems.append(
                    f"passbook: {len(beyond)} rows past the checkpoint {at['passbook']} "
                    f"(applied again after a restart): {beyond[:5]}"
                )
            if missing:
                problems.append(f"passbook: {len(missing)} movements skipped: {missing[:5]}")
            if wrong:
                p = wrong[0]
                problems.append(
                    f"passbook: {len(wrong)} rows differ, e.g. {got_by[p]} != {want_by[p]}"
                )
        return at, problems
    finally:
        model.close()


# -- the kill loop -----------------------------------------------------------------------------


def run_and_kill(
    store: eb.EventStore, mode: str, seed: int, rng: random.Random, out: Path, windows: int = 0
) -> int:
    """Start a projector and SIGKILL it: at a random moment, or (windows > 0) inside its
    `windows`-th window between the two transactions of the negative control. Returns the
    head of the log at the kill."""
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, str(PROJECTOR), str(store.root), mode, str(seed)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            cwd=PROJECTOR.parent,
        )
    try:
        deadline = time.monotonic() + 30
        while b"READY" not in out.read_bytes():
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the projector never got ready"
            time.sleep(0.001)
        if windows:  # (a projection the control already broke opens no window: give up later)
            deadline = time.monotonic() + 1.5
            while out.read_bytes().count(b"WINDOW") < windows and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.001)
        else:
            time.sleep(rng.uniform(0.0, 0.25) if rng.random() < 0.8 else rng.uniform(0.25, 0.8))
        head = store.head_position()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()  # type: ignore[union-attr]
    return head


def kill_loop(tmp_path: Path, mode: str, rounds: int, seed: int) -> list[list[str]]:
    """Fill a bank log, then kill a projector `rounds` times, checking the read model after
    each kill; returns each round's discrepancies."""
    rng = random.Random(seed)
    root = tmp_path / "bank"
    found: list[list[str]] = []
    busy = 0  # rounds killed with work left to do
    with eb.open_store(root, sync="none") as store:  # (this process is not the one killed)
        engine = eb.Engine(bank.app, store)
        for a in range(ACCOUNTS - 4):  # the last accounts get opened along the way
            engine.execute(bank.OpenAccount(account_id=f"a{a}"))
        run_commands(engine, rng, 2500)
        for r in range(rounds):
            run_commands(engine, rng, rng.randint(20, 300))
            appender = Appender(engine, rng.randrange(2**32)) if rng.random() < 0.5 else None
            try:
                windows = rng.randint(1, 3) if mode == "split" else 0
                out = tmp_path / f"r{r}.out"
                killed_at = run_and_kill(store, mode, rng.randrange(2**32), rng, out, windows)
            finally:
                if appender is not None:
                    appender.stop()
            at, problems = discrepancies(store)
            head = store.head_position()
            busy += any(at.get(name, 0) < killed_at for name in ("balances", "passbook"))
            print(
                f"round {r}: killed at head {killed_at}, head {head}, checkpoints {at}, "
                f"problems {len(problems)}"
            )
            for problem in problems[:2]:
                print("   ", problem)
            found.append(problems)
        if mode == "exact":
            assert busy >= rounds // 4, f"only {busy} of {rounds} kills found work left to do"
            # the last state resumes: catch up in this process and check at the head
            models = open_models(store, {"sqlite"})
            try:
                eb.ProjectionRunner(store, bank.app, models).catch_up()
            finally:
                models["sqlite"].close()
            at, problems = discrepancies(store)
            assert at == {"balances": head, "passbook": head}, (at, head)
            found.append(problems)
    return found


def test_projector_kill9_applies_each_event_exactly_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("EVENTBOOK_SEED") or random.randrange(2**32))
    rounds = int(os.environ.get("EVENTBOOK_PROJECTION_KILLS", "20"))
    print(f"EVENTBOOK_SEED={seed}")
    found = kill_loop(tmp_path, "exact", rounds, seed)
    bad = [(r, problems) for r, problems in enumerate(found) if problems]
    assert not bad, f"read model differs from the log at its checkpoint (seed {seed}): {bad[:3]}"


def test_negative_control_checkpoint_in_a_separate_transaction_is_caught(tmp_path: Path) -> None:
    """NEGATIVE CONTROL: proves the check above can fail. The projector commits the handler's
    changes and the checkpoint in two transactions and is killed between them; the same check
    must report the rows past the checkpoint (they would be applied twice)."""
    seed = int(os.environ.get("EVENTBOOK_SEED") or random.randrange(2**32))
    print(f"EVENTBOOK_SEED={seed}")
    found = kill_loop(tmp_path, "split", 3, seed)
    assert found[0], f"a kill inside the window went unnoticed (seed {seed})"
    assert any(found), f"the check missed a checkpoint written apart from its changes: {found}"
