"""Full-text read models (SQLite FTS5): `fts5(...)` tables per generation, search by words on the
active generation, blue/green rebuilds, drift of a table altered by hand, bad queries, on the
memory store and on the embedded log."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

import eventbook as eb
from eventbook.read_models import open_read_models
from eventbook.read_models.fts import query_chars_max, results_count_max, search
from eventbook.read_models.sqlite import SqliteReadModel


class Memo(eb.Event, tag="Memo"):
    text: str
    author: str = ""


def _memos(tx, event: Memo, recorded: eb.RecordedEvent) -> None:
    tx.execute(
        "INSERT INTO {memos} (text, author, position) VALUES (?, ?, ?)",
        (event.text, event.author, recorded.position),
    )


def _memo_count(tx, event: Memo, recorded: eb.RecordedEvent) -> None:
    tx.execute(
        "INSERT INTO {memo_count} VALUES (?, 1) ON CONFLICT (author) DO UPDATE SET n = n + 1",
        (event.author,),
    )


MEMOS = eb.Projection(
    "memos",
    _memos,
    handles=frozenset({"Memo"}),
    target="fts",
    tables={"memos": "fts5(text, author UNINDEXED, position UNINDEXED)"},
)
MEMO_COUNT = eb.Projection(
    "memo_count",
    _memo_count,
    handles=frozenset({"Memo"}),
    tables={"memo_count": "author TEXT PRIMARY KEY, n INTEGER NOT NULL"},
)
APP = eb.Application(
    name="memos", deciders=[], commands=[], events=[Memo], projections=[MEMOS, MEMO_COUNT]
)

TEXTS = [
    ("red widget, fast delivery", "ann"),
    ("blue gadget", "bob"),
    ("widgets for the garden", "ann"),
    ("gift wrap the blue widget please", "cyd"),
    ("call before delivery", "bob"),
]


@pytest.fixture(params=["memory", "log"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[eb.EventStore]:
    url = "memory://" if request.param == "memory" else str(tmp_path / "memos")
    opened = eb.open_store(url)
    yield opened
    opened.close()


@pytest.fixture
def models(store: eb.EventStore) -> Iterator[dict]:
    opened = open_read_models(store, {"sqlite", "fts"})
    yield opened
    opened["sqlite"].close()


@pytest.fixture
def model(models: dict) -> SqliteReadModel:
    assert models["fts"] is models["sqlite"]  # one file, one connection
    return models["fts"]


@pytest.fixture
def runner(store: eb.EventStore, models: dict) -> eb.ProjectionRunner:
    return eb.ProjectionRunner(store, APP, models, batch_events=2)


def write(store: eb.EventStore, memos: list[tuple[str, str]]) -> int:
    result = store.append(
        [eb.NewEvent.of(f"memo-{author}", Memo(text=text, author=author)) for text, author in memos]
    )
    return result.last_position


def texts(rows: list[tuple]) -> list[str]:
    return [row[0] for row in rows]


def active_generation(model: SqliteReadModel, name: str) -> int:
    [(generation,)] = model.query(
        "SELECT generation FROM eventbook_projections WHERE name=? AND active=1", (name,)
    )
    return generation


def test_an_fts5_declaration_makes_a_virtual_table_per_generation(
    runner: eb.ProjectionRunner, model: SqliteReadModel, store: eb.EventStore
) -> None:
    write(store, TEXTS)
    runner.catch_up()
    [(sql,)] = model.query("SELECT sql FROM sqlite_master WHERE name='memos__memos__g1'")
    assert sql == (
        "CREATE VIRTUAL TABLE memos__memos__g1 USING fts5(text, author UNINDEXED, "
        "position UNINDEXED)"
    )
    assert model.query("SELECT type FROM sqlite_master WHERE name='memos'") == [("view",)]
    assert model.drift(MEMOS, 1) is None
    assert model.drift(MEMO_COUNT, 1) is None  # plain tables beside it are unchanged
    assert {s.name: (s.status, s.lag) for s in runner.status()} == {
        "memos": ("running", 0),
        "memo_count": ("running", 0),
    }


def test_search_by_words_prefixes_phrases_and_operators(
    runner: eb.ProjectionRunner, model: SqliteReadModel, store: eb.EventStore
) -> None:
    write(store, TEXTS)
    runner.catch_up()
    assert sorted(texts(search(model, "memos", "memos", "widget"))) == [
        "gift wrap the blue widget please",
        "red widget, fast delivery",
    ]
    assert len(search(model, "memos", "memos", "wid*")) == 3  # widget and widgets
    assert texts(search(model, "memos", "memos", "blue widget")) == [  # both words
        "gift wrap the blue widget please"
    ]
    assert texts(search(model, "memos", "memos", '"blue gadget"')) == ["blue gadget"]
    assert len(search(model, "memos", "memos", "gadget OR garden")) == 2
    assert texts(search(model, "memos", "memos", "delivery NOT red")) == ["call before delivery"]
    assert search(model, "memos", "memos", "WIDGET") == search(model, "memos", "memos", "widget")
    assert search(model, "memos", "memos", "nothing") == []
    assert search(model, "memos", "memos", "ann") == []  # the author is stored UNINDEXED
    [row] = search(model, "memos", "memos", "garden")
    assert row[1] == "ann" and row[2] == 3  # (text, author, position)
    assert len(search(model, "memos", "memos", "wid*", limit=1)) == 1
    assert search(model, MEMOS, "memos", "garden") == [row]  # the Projection itself will do


def test_results_come_best_first(
    runner: eb.ProjectionRunner, model: SqliteReadModel, store: eb.EventStore
) -> None:
    write(store, [("tea " + "filler " * 40, "a"), ("tea tea tea", "b"), ("tea and cake", "c")])
    runner.catch_up()
    assert [row[1] for row in search(model, "memos", "memos", "tea")] == ["b", "c", "a"]


def test_the_view_of_an_fts_table_can_be_matched_by_column(
    runner: eb.ProjectionRunner, model: SqliteReadModel, store: eb.EventStore
) -> None:
    write(store, TEXTS)
    runner.catch_up()
    found = model.query("SELECT author FROM memos WHERE text MATCH ? ORDER BY author", ("wid*",))
    assert found == [("ann",), ("ann",), ("cyd",)]


def test_search_follows_live_appends(
    runner: eb.ProjectionRunner, model: SqliteReadModel, store: eb.EventStore
) -> None:
    runner.start(poll_seconds=0.01)
    try:
        write(store, TEXTS[:2])
        runner.wait_for(store.head_position(), timeout=10)
        assert texts(search(model, "memos", "memos", "gadget")) == ["blue gadget"]
        write(store, [("another gadget", "dan")])
        runner.wait_for(store.head_position(), timeout=10)
        assert len(search(model, "memos", "memos", "gadget")) == 2
    finally:
        runner.stop()


@pytest.mark.parametrize(
    "query",
    ['"unterminated', "AND", "widget AND", "nocolumn: widget", "*", "NEAR(", "a ) b"],
)
def test_a_query_that_does_not_parse_is_invalid_input(
    runner: eb.ProjectionRunner, model: SqliteReadModel, store: eb.EventStore, query: str
) -> None:
    write(store, TEXTS)
    runner.catch_up()
    with pytest.raises(eb.InvalidInput, match="FTS5 syntax") as raised:
        search(model, "memos", "memos", query)
    assert repr(query) in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert len(search(model, "memos", "memos", "widget")) == 2  # and nothing else is harmed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("memos", "memos", ""), "at least one word"),
        (("memos", "memos", "   "), "at least one word"),
        (("memos", "memos", "w" * (query_chars_max + 1)), "at most"),
        (("memos", "memos", "widget", 0), "limit"),
        (("memos", "memos", "widget", results_count_max + 1), "limit"),
        (("memos", "memos", "widget", True), "limit"),
        (("nope", "memos", "widget"), "no active read model"),
        (("memos", "nope", "widget"), "no table nope"),
        (("memo_count", "memo_count", "widget"), "not an FTS5"),
        (("memos; DROP TABLE x", "memos", "widget"), "projection name"),
        (("memos", "memos WHERE 1", "widget"), "table name"),
    ],
)
def test_bad_arguments_are_invalid_input(
    runner: eb.ProjectionRunner, model: SqliteReadModel, store: eb.EventStore, args, message
) -> None:
    write(store, TEXTS)
    runner.catch_up()
    with pytest.raises(eb.InvalidInput, match=message):
        search(model, *args)


def test_search_needs_the_sqlite_read_model() -> None:
    with pytest.raises(eb.InvalidInput, match="SQLite read model"):
        search(object(), "memos", "memos", "widget")  # type: ignore[arg-type]


def test_a_rebuild_keeps_serving_the_old_generation_then_switches(
    runner: eb.ProjectionRunner, model: SqliteReadModel, store: eb.EventStore
) -> None:
    write(store, TEXTS)
    runner.catch_up()
    before = search(model, "memos", "memos", "wid*")
    seen_during: list[tuple[int, list]] = []

    def progress(position: int, head: int) -> None:  # between batches of the new generation
        seen_during.append(
            (active_generation(model, "memos"), search(model, "memos", "memos", "wid*"))
        )

    rebuilt = runner.rebuild("memos", progress=progress)
    assert rebuilt.generation == 2 and rebuilt.active
    assert len(seen_during) >= 2  # batches of 2 events: the old one served in between
    assert all(gen == 1 and rows == before for gen, rows in seen_during)
    assert active_generation(model, "memos") == 2
    assert search(model, "memos", "memos", "wid*") == before
    leftovers = model.query("SELECT name FROM sqlite_master WHERE name LIKE 'memos__memos__g1%'")
    assert leftovers == []  # the old virtual table went with its shadow tables
    assert model.drift(MEMOS, 2) is None
    write(store, [("widget spares", "eve")])
    runner.catch_up()
    assert len(search(model, "memos", "memos", "wid*")) == 4


def test_a_version_bump_rebuilds_blue_green(
    store: eb.EventStore, models: dict, model: SqliteReadModel
) -> None:
    eb.ProjectionRunner(store, APP, models).catch_up()
    write(store, TEXTS)
    eb.ProjectionRunner(store, APP, models).catch_up()
    v2 = dataclasses.replace(APP, projections=[dataclasses.replace(MEMOS, version=2), MEMO_COUNT])
    eb.ProjectionRunner(store, v2, models).catch_up()
    assert active_generation(model, "memos") == 2
    [status] = [s for s in eb.ProjectionRunner(store, v2, models).status() if s.name == "memos"]
    assert (status.version, status.status, status.lag) == (2, "running", 0)
    assert len(search(model, "memos", "memos", "wid*")) == 3


def test_an_fts_table_altered_by_hand_stops_the_projection(
    runner: eb.ProjectionRunner, model: SqliteReadModel, store: eb.EventStore
) -> None:
    write(store, TEXTS[:2])
    runner.catch_up()
    model.db.execute("DROP TABLE memos__memos__g1")
    model.db.execute("CREATE VIRTUAL TABLE memos__memos__g1 USING fts5(text, author)")
    write(store, TEXTS[2:])
    runner.catch_up()
    status = {s.name: s for s in runner.status()}
    assert status["memos"].status == "stopped"
    assert "was altered" in status["memos"].error and "rebuild" in status["memos"].error
    assert status["memo_count"].status == "running" and status["memo_count"].lag == 0
    runner.rebuild("memos")  # the way out the error names
    assert len(search(model, "memos", "memos", "wid*")) == 3


def test_a_read_only_model_searches_what_the_runner_wrote(tmp_path: Path) -> None:
    store = eb.open_store(str(tmp_path / "memos"))
    try:
        path = tmp_path / "memos" / "read_models.sqlite"
        models = open_read_models(store, {"sqlite", "fts"})
        readonly = SqliteReadModel(path, readonly=True)
        with pytest.raises(eb.InvalidInput, match="not run yet"):
            search(readonly, "memos", "memos", "widget")
        write(store, TEXTS)
        eb.ProjectionRunner(store, APP, models).catch_up()
        assert len(search(readonly, "memos", "memos", "widget")) == 2
        readonly.close()
        models["sqlite"].close()
    finally:
        store.close()
