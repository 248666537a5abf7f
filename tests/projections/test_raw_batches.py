"""Raw batches (`raw_batch=True`): a batch handler that gets the recorded events alone, read
from the log while it folds them, without typed events. On both stores: the same read model
as the per-event handler, the application's upcasters still applied, failing events found and
stopped at, holes in the positions, handlers that stop reading early, and the batch as the
`(recorded, event)` sequence a read model may take it for."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import eventbook as eb
from eventbook.examples import bank
from eventbook.projections import RecordedBatch
from eventbook.read_models import ReadModel, SqliteReadModel
from eventbook.read_models.sqlite import SqliteTx


def bank_log(store: eb.EventStore, accounts: int = 5, movements: int = 120) -> None:
    """Accounts opened, then deposits and withdrawals, through the bank's engine."""
    engine = eb.Engine(bank.app, store)
    for a in range(accounts):
        engine.execute(bank.OpenAccount(account_id=f"a{a}"))
    for i in range(movements):
        account = f"a{i % accounts}"
        if i % 3 == 2:
            engine.execute(bank.Withdraw(account_id=account, amount=1 + i % 4))
        else:
            engine.execute(bank.Deposit(account_id=account, amount=10 + i))


def balances_rows(model: ReadModel) -> list[tuple]:
    assert isinstance(model, SqliteReadModel)
    return model.query("SELECT * FROM balances ORDER BY account_id")


def with_projection(projection: eb.Projection) -> eb.Application:
    return dataclasses.replace(bank.app, projections=[projection])


def test_raw_batch_without_a_batch_handler_changes_nothing(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_log(store, accounts=2, movements=6)
    seen: list[tuple[Any, eb.RecordedEvent]] = []
    per_event = dataclasses.replace(
        bank.balances,
        handler=lambda tx, event, recorded: seen.append((event, recorded)),
        batch_handler=None,
    )
    assert bank.balances.raw and per_event.raw_batch and not per_event.raw
    eb.ProjectionRunner(store, with_projection(per_event), models).catch_up()
    assert seen
    assert all(
        isinstance(event, bank.AccountOpened | bank.Deposited | bank.Withdrawn) for event, _ in seen
    )


def test_a_raw_batch_handler_gets_the_recorded_events_it_handles(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_log(store)
    seen: list[list[eb.RecordedEvent]] = []

    def batch_handler(tx: Any, records: Any) -> None:
        seen.append(list(records))

    counted = eb.projection(
        "deposits_seen",
        handles=["Deposited"],
        tables={"n": "x INTEGER"},
        batch_handler=batch_handler,
        raw_batch=True,
    )(lambda tx, event, recorded: None)
    runner = eb.ProjectionRunner(store, with_projection(counted), models, batch_events=16)
    applied = runner.catch_up()
    deposits = [r for r in store.read_all() if r.type == "Deposited"]
    assert applied == len(deposits) == 80
    assert [r for batch in seen for r in batch] == deposits  # each once, in order, untyped
    assert all(type(r) is eb.RecordedEvent for batch in seen for r in batch)
    assert max(len(batch) for batch in seen) <= 16
    assert runner.position("deposits_seen") == store.head_position()


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_raw_batches_leave_what_the_event_handler_leaves(
    store: eb.EventStore, tmp_path: Path, size: int
) -> None:
    bank_log(store)
    typed = dataclasses.replace(bank.balances, batch_handler=None)
    folded = {}
    for name, projection in (("raw", bank.balances), ("typed", typed)):
        model = SqliteReadModel(str(tmp_path / f"{name}.sqlite"))
        runner = eb.ProjectionRunner(store, with_projection(projection), {"sqlite": model})
        runner.batch_events = size
        runner.catch_up()
        folded[name] = balances_rows(model)
        model.close()
    assert folded["raw"] == folded["typed"]
    assert len(folded["raw"]) == 5


# -- upcasting ---------------------------------------------------------------------------------


class Noted(eb.Event, tag="Noted"):
    schema_version: ClassVar[int] = 3
    text: str
    words: int
    lang: str


def notes_app(projection: eb.Projection) -> eb.Application:
    app = eb.Application(
        name="notes", deciders=[], commands=[], events=[Noted], projections=[projection]
    )

    @app.upcaster("Noted", 1)
    def _words(data: dict) -> dict:
        return {**data, "words": len(data["text"].split())}

    @app.upcaster("Noted", 2)
    def _lang(data: dict) -> dict:
        return {**data, "lang": "fr"}

    return app


def note_row(tx: Any, event: Noted, recorded: eb.RecordedEvent) -> None:
    tx.execute(
        "INSERT INTO {notes} VALUES (?, ?, ?, ?)",
        (recorded.position, event.text, event.words, event.lang),
    )


VERSIONS_SEEN: list[int] = []


def note_rows(tx: Any, records: Any) -> None:
    rows = []
    for r in records:
        VERSIONS_SEEN.append(r.schema_version)
        rows.append((r.position, r.data["text"], r.data["words"], r.data["lang"]))
    tx.executemany("INSERT INTO {notes} VALUES (?, ?, ?, ?)", rows)


def test_raw_batches_come_lifted_through_the_upcasters(
    store: eb.EventStore, tmp_path: Path
) -> None:
    store.append(
        [
            eb.NewEvent("note-1", "Noted", {"text": "a b c"}, schema_version=1),
            eb.NewEvent("note-1", "Noted", {"text": "d e", "words": 2}, schema_version=2),
            eb.NewEvent(
                "note-1", "Noted", {"text": "f", "words": 1, "lang": "en"}, schema_version=3
            ),
        ]
    )
    store.append([eb.NewEvent("note-1", "Noted", {"text": "g"}, schema_version=4)])  # too new
    tables = {"notes": "position INTEGER, text TEXT, words INTEGER, lang TEXT"}
    typed = eb.projection("notes", handles=["Noted"], tables=tables)(note_row)
    raw = dataclasses.replace(typed, batch_handler=note_rows, raw_batch=True)
    VERSIONS_SEEN.clear()
    for name, projection in (("typed", typed), ("raw", raw)):
        model = SqliteReadModel(str(tmp_path / f"{name}.sqlite"))
        runner = eb.ProjectionRunner(store, notes_app(projection), {"sqlite": model}, attempts=1)
        runner.catch_up()
        assert model.query("SELECT * FROM notes ORDER BY position") == [
            (1, "a b c", 3, "fr"),
            (2, "d e", 2, "fr"),
            (3, "f", 1, "en"),
        ], name
        (status,) = runner.status()
        assert (status.status, status.position, status.failed_position) == ("stopped", 3, 4)
        assert "newer than this code" in status.error
        model.close()
    assert set(VERSIONS_SEEN) == {3}  # never an older shape


# -- failures, holes, early stops ----------------------------------------------------------------


def test_a_failing_raw_batch_is_applied_event_by_event_and_stops_at_the_event(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_log(store)
    bad = next(r.position for r in store.read_all() if r.type == "Withdrawn" and r.position > 40)

    def batch_handler(tx: Any, records: Any) -> None:
        checked = []
        for r in records:
            if r.position == bad:
                raise ValueError(f"no withdrawals at {bad}")
            checked.append(r)
        bank.balances.batch_handler(tx, checked)  # type: ignore[misc]

    failing = dataclasses.replace(bank.balances, batch_handler=batch_handler)
    runner = eb.ProjectionRunner(
        store, with_projection(failing), models, batch_events=16, attempts=2
    )
    runner.catch_up()
    (status,) = runner.status()
    assert (status.status, status.position, status.failed_position) == ("stopped", bad - 1, bad)
    assert f"no withdrawals at {bad}" in status.error
    expected = SqliteReadModel(":memory:")
    eb.ProjectionRunner(store, with_projection(bank.balances), {"sqlite": expected}).catch_up()
    assert balances_rows(models["sqlite"]) != balances_rows(expected)
    partial = SqliteReadModel(":memory:")
    prefix = HiddenPositions(store, hidden=set(), head=bad - 1)
    eb.ProjectionRunner(prefix, with_projection(bank.balances), {"sqlite": partial}).catch_up()
    assert balances_rows(models["sqlite"]) == balances_rows(partial)


def test_data_a_raw_handler_cannot_use_stops_it_at_that_event(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_log(store, accounts=2, movements=10)
    bad = store.append([eb.NewEvent("account-a1", "Deposited", {"amount": "lots"})])
    bank_log_more = eb.Engine(bank.app, store)
    bank_log_more.execute(bank.Deposit(account_id="a0", amount=5))
    runner = eb.ProjectionRunner(store, with_projection(bank.balances), models, attempts=1)
    runner.catch_up()
    (status,) = runner.status()
    assert (status.status, status.failed_position) == ("stopped", bad.first_position)
    assert status.position == bad.first_position - 1
    assert status.error.startswith("TypeError")  # not decoded, so not an UpcastError


class HiddenPositions:
    """A store whose log has holes (positions never visible, as aborted transactions leave
    on a database that hands out positions before commit) and, optionally, an earlier head."""

    def __init__(self, store: eb.EventStore, hidden: set[int], head: int | None = None) -> None:
        self.store = store
        self.hidden = hidden
        self.head = store.head_position() if head is None else head

    def head_position(self) -> int:
        return self.head

    def read_all(self, *, after: int = 0, limit: int | None = None) -> Iterator[eb.RecordedEvent]:
        """Up to `limit` events after `after`, skipping the holes (so possibly past
        `after + limit`, as a store with holes may)."""
        found = 0
        for r in self.store.read_all(after=after):
            if r.position > self.head or (limit is not None and found >= limit):
                return
            if r.position not in self.hidden:
                found += 1
                yield r

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.mark.parametrize("size", [1, 5, 16])
def test_raw_batches_over_positions_with_holes(
    store: eb.EventStore, tmp_path: Path, size: int
) -> None:
    bank_log(store)
    opened = {r.position for r in store.read_all() if r.type == "AccountOpened"}
    hidden = {p for p in range(1, store.head_position() + 1) if p % 7 == 3} - opened
    holey = HiddenPositions(store, hidden)
    typed = dataclasses.replace(bank.balances, batch_handler=None)
    folded = {}
    for name, projection in (("raw", bank.balances), ("typed", typed)):
        model = SqliteReadModel(str(tmp_path / f"{name}.sqlite"))
        runner = eb.ProjectionRunner(holey, with_projection(projection), {"sqlite": model})
        runner.batch_events = size
        applied = runner.catch_up()
        assert applied == sum(
            bank.balances.wants(r.type) for r in store.read_all() if r.position not in hidden
        )
        assert runner.position("balances") == store.head_position()
        folded[name] = balances_rows(model)
        model.close()
    assert folded["raw"] == folded["typed"]


def test_a_raw_handler_that_stops_reading_early(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_log(store, movements=40)
    firsts: list[int] = []

    def batch_handler(tx: Any, records: Any) -> None:
        for r in records:  # only the first event of each batch
            firsts.append(r.position)
            break

    first_only = eb.projection(
        "first_only", tables={"n": "x INTEGER"}, batch_handler=batch_handler, raw_batch=True
    )(lambda tx, event, recorded: None)
    runner = eb.ProjectionRunner(store, with_projection(first_only), models, batch_events=10)
    assert runner.catch_up() == store.head_position()  # every event counted
    assert firsts == list(range(1, store.head_position() + 1, 10))  # each batch in its place


def test_a_raw_batch_is_the_usual_pairs_to_a_read_model(store: eb.EventStore) -> None:
    bank_log(store, accounts=2, movements=4)
    reads, decoded = [], []

    def read() -> Iterator[eb.RecordedEvent]:
        reads.append(1)
        return store.read_all()

    def typed(recorded: eb.RecordedEvent) -> Any:
        decoded.append(recorded.position)
        return recorded.as_(bank.app.event_types[recorded.type])

    batch = RecordedBatch(read, typed)
    events = list(store.read_all())
    assert list(batch.records()) == events
    assert list(batch.records()) == events  # read again: the log does not change
    assert len(reads) == 2 and not decoded
    assert len(batch) == 6 and len(reads) == 3 and not decoded  # counted, not decoded
    pairs = [(r, r.as_(bank.app.event_types[r.type])) for r in events]
    assert batch[0] == pairs[0]
    assert batch[-2:] == pairs[-2:]
    assert list(batch) == pairs
    assert isinstance(batch[1][1], bank.AccountOpened)  # typed, not None
    assert len(reads) == 3 and len(decoded) == 6  # each read and decoded once for all of that
    assert list(batch.records()) == events
    assert len(reads) == 3
    assert RecordedBatch.of(events[:2]).count == 2
    assert list(RecordedBatch.of(events[:2])) == [(events[0], None), (events[1], None)]


def test_a_read_model_calling_the_event_handler_gets_typed_events(
    store: eb.EventStore, models: dict[str, ReadModel]
) -> None:
    bank_log(store)
    model = models["sqlite"]
    assert isinstance(model, SqliteReadModel)

    class PerEvent(SqliteReadModel):  # a target that runs the per-event handler itself
        def apply(self, projection, generation, batch, after, through) -> None:  # type: ignore[no-untyped-def]
            with self._transaction() as db:
                db.execute(
                    "UPDATE eventbook_projections SET position=? WHERE name=? AND generation=?",
                    (through, projection.name, generation),
                )
                tx = SqliteTx(db, self._tables(projection, generation))
                for recorded, event in batch:
                    projection.handler(tx, event, recorded)

    per_event = PerEvent(":memory:")
    runner = eb.ProjectionRunner(store, with_projection(bank.balances), {"sqlite": per_event})
    runner.batch_events = 16
    runner.catch_up()
    eb.ProjectionRunner(store, with_projection(bank.balances), models).catch_up()
    assert balances_rows(per_event) == balances_rows(model)
    assert len(balances_rows(model)) == 5
