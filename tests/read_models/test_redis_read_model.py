"""The Redis read model against a real redis-server: a handler's writes and the checkpoint in one
MULTI/EXEC, reads through the batch's own writes, generations (switch, drop, failure marks),
the active generation for queries, and opening it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

import eventbook as eb
from eventbook.read_models import AlreadyApplied, open_read_models
from eventbook.read_models.redis import RedisReadModel, RedisTx
from eventbook.testing.servers import ping, redis_server

NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def recorded(position: int, data: dict | None = None, stream: str = "s-1") -> eb.RecordedEvent:
    return eb.RecordedEvent(
        position, stream, position, "Happened", data or {}, {}, NOW, NOW, f"e{position}", 1, None
    )


def batch(*events: eb.RecordedEvent) -> list[tuple[eb.RecordedEvent, None]]:
    return [(e, None) for e in events]


def counting(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
    """Counts events per stream, keeps the last position, sums `amount`."""
    key = f"stream:{rec.stream}"
    tx.hincrby(key, "events", 1)
    tx.hincrby(key, "amount", rec.data.get("amount", 0))
    tx.hset(key, "position", rec.position)
    tx.set(f"last:{rec.stream}", rec.position)


COUNTING = eb.Projection("counting", counting, target="redis")


@pytest.fixture
def model(redis_url: str) -> Iterator[RedisReadModel]:
    opened = RedisReadModel(redis_url)
    yield opened
    opened.close()


def active(
    model: RedisReadModel, projection: eb.Projection = COUNTING
) -> eb.projections.Generation:
    return model.create_generation(projection, active=True)


# -- the transaction ------------------------------------------------------------------------------


def test_a_batch_and_its_checkpoint_are_kept_together(model: RedisReadModel) -> None:
    gen = active(model)
    model.apply(COUNTING, gen.generation, batch(recorded(1, {"amount": 5}), recorded(2)), 0, 2)
    model.apply(COUNTING, gen.generation, batch(recorded(3, {"amount": 7})), 2, 3)

    assert model.hgetall("counting", "stream:s-1") == {
        "events": "3",
        "amount": "12",
        "position": "3",
    }
    assert model.get("counting", "last:s-1") == "3"
    assert model.hget("counting", "stream:s-1", "amount") == "12"
    [after] = model.generations("counting")
    assert (after.position, after.active, after.status) == (3, True, "running")
    assert model.keys("counting") == ["last:s-1", "stream:s-1"]


def test_a_failing_handler_keeps_nothing_of_its_batch(
    model: RedisReadModel, redis_client: redis.Redis
) -> None:
    gen = active(model)
    model.apply(COUNTING, gen.generation, batch(recorded(1, {"amount": 5})), 0, 1)
    before = sorted(redis_client.keys("*"))
    state = model.hgetall("counting", "stream:s-1")

    def failing(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
        counting(tx, event, rec)
        tx.set("other", "x")
        if rec.position == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.apply(
            eb.Projection("counting", failing, target="redis"),
            gen.generation,
            batch(recorded(2), recorded(3)),
            1,
            3,
        )

    assert sorted(redis_client.keys("*")) == before
    assert model.hgetall("counting", "stream:s-1") == state
    assert model.generations("counting")[0].position == 1


def test_a_moved_checkpoint_raises_already_applied_and_keeps_nothing(
    model: RedisReadModel,
) -> None:
    gen = active(model)
    first = batch(recorded(1, {"amount": 5}), recorded(2, {"amount": 1}))
    model.apply(COUNTING, gen.generation, first, 0, 2)

    with pytest.raises(AlreadyApplied):  # the same batch delivered again
        model.apply(COUNTING, gen.generation, first, 0, 2)
    with pytest.raises(AlreadyApplied):  # an overlapping one
        model.apply(COUNTING, gen.generation, batch(recorded(2, {"amount": 1})), 1, 2)

    assert model.hgetall("counting", "stream:s-1")["amount"] == "6"
    assert model.generations("counting")[0].position == 2


def test_a_checkpoint_moved_during_the_handler_aborts_the_exec(
    model: RedisReadModel, redis_url: str
) -> None:
    """Two runners on one batch: the second commits while the first is inside its handler; the
    first one's EXEC is refused (WATCH) and it finds the checkpoint moved."""
    gen = active(model)
    other = RedisReadModel(redis_url)
    calls = 0

    def racing(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
        nonlocal calls
        calls += 1
        counting(tx, event, rec)
        if calls == 1:  # the other runner applies the same batch now
            other.apply(COUNTING, gen.generation, batch(rec), 0, 1)

    with pytest.raises(AlreadyApplied):
        model.apply(eb.Projection("counting", racing, target="redis"), gen.generation,
                    batch(recorded(1, {"amount": 5})), 0, 1)  # fmt: skip

    assert model.hgetall("counting", "stream:s-1") == {
        "events": "1",
        "amount": "5",
        "position": "1",
    }
    assert calls == 1
    other.close()


def test_a_handler_that_fails_on_another_runners_writes_is_already_applied(
    model: RedisReadModel, redis_url: str
) -> None:
    """A handler may trip over what a racing runner committed under it (a key it expected
    missing): that is the race, reported as AlreadyApplied, not a failing event."""
    gen = active(model)
    other = RedisReadModel(redis_url)

    def strict(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
        other.apply(COUNTING, gen.generation, batch(rec), 0, 1)
        if tx.hgetall(f"stream:{rec.stream}"):
            raise RuntimeError("seen twice")

    with pytest.raises(AlreadyApplied):
        model.apply(eb.Projection("counting", strict, target="redis"), gen.generation,
                    batch(recorded(1)), 0, 1)  # fmt: skip
    assert model.hgetall("counting", "stream:s-1")["events"] == "1"
    other.close()


def test_a_change_of_another_generation_retries_the_batch_once_applied(
    model: RedisReadModel, redis_url: str
) -> None:
    """The meta hash is shared by a projection's generations: a concurrent change of another
    generation aborts the EXEC, and the batch is run again from the top, applied once."""
    live = active(model)
    building = model.create_generation(COUNTING, active=False)
    other = RedisReadModel(redis_url)
    calls = 0

    def racing(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
        nonlocal calls
        calls += 1
        counting(tx, event, rec)
        if calls == 1:
            other.apply(COUNTING, building.generation, batch(rec), 0, 1)

    model.apply(eb.Projection("counting", racing, target="redis"), live.generation,
                batch(recorded(1, {"amount": 5})), 0, 1)  # fmt: skip

    assert calls == 2
    assert model.hgetall("counting", "stream:s-1")["amount"] == "5"
    assert [g.position for g in model.generations("counting")] == [1, 1]
    other.close()


def test_reads_in_a_batch_see_its_own_writes(model: RedisReadModel) -> None:
    gen = active(model)
    seen: dict[str, object] = {}

    def handler(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
        if rec.position == 1:
            tx.hset("h", {"a": 1, "b": "x"})
            tx.set("s", "one")
            return
        seen["committed"] = tx.hgetall("h")
        tx.hincrby("h", "a", 4)
        tx.hincrby("h", "n", 2)  # a missing field counts as 0
        seen["a"] = tx.hget("h", "a")
        tx.hdel("h", "b")
        seen["all"] = tx.hgetall("h")
        tx.set("s", "two")
        seen["s"] = tx.get("s")
        tx.delete("gone")
        seen["gone"] = tx.get("gone")
        tx.delete("h2")
        tx.hincrby("h2", "c", 3)  # after a delete: from nothing
        seen["h2"] = tx.hgetall("h2")

    projection = eb.Projection("counting", handler, target="redis")
    model.apply(projection, gen.generation, batch(recorded(1)), 0, 1)
    model.apply(projection, gen.generation, batch(recorded(2)), 1, 2)

    assert seen == {
        "committed": {"a": "1", "b": "x"},
        "a": "5",
        "all": {"a": "5", "n": "2"},
        "s": "two",
        "gone": None,
        "h2": {"c": "3"},
    }
    assert model.hgetall("counting", "h") == {"a": "5", "n": "2"}
    assert model.get("counting", "s") == "two"
    assert model.hgetall("counting", "h2") == {"c": "3"}


def test_increments_without_a_read_are_resolved_at_commit(model: RedisReadModel) -> None:
    gen = active(model)
    events = [recorded(p, {"amount": p}, stream=f"s-{p % 3}") for p in range(1, 31)]
    model.apply(COUNTING, gen.generation, batch(*events[:10]), 0, 10)
    model.apply(COUNTING, gen.generation, batch(*events[10:]), 10, 30)

    for s in range(3):
        mine = [e for e in events if e.stream == f"s-{s}"]
        assert model.hgetall("counting", f"stream:s-{s}") == {
            "events": str(len(mine)),
            "amount": str(sum(e.position for e in mine)),
            "position": str(mine[-1].position),
        }


def test_a_write_of_the_wrong_type_fails_before_multi_and_keeps_nothing(
    model: RedisReadModel, redis_client: redis.Redis
) -> None:
    """Redis does not roll a MULTI back when one command fails: the read model checks types
    first, so the batch fails whole."""
    gen = active(model)

    def strings(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
        tx.set("stream:s-1", "a string")

    model.apply(eb.Projection("counting", strings, target="redis"), gen.generation,
                batch(recorded(1)), 0, 1)  # fmt: skip
    before = {k: redis_client.type(k) for k in redis_client.keys("*")}

    with pytest.raises(eb.InvalidInput, match="holds a Redis string, not a hash"):
        model.apply(COUNTING, gen.generation, batch(recorded(2)), 1, 2)

    assert {k: redis_client.type(k) for k in redis_client.keys("*")} == before
    assert model.get("counting", "stream:s-1") == "a string"
    assert model.get("counting", "last:s-1") is None  # the batch's other write is not kept

    def not_a_number(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
        tx.hset("h", "f", "abc")

    model.apply(eb.Projection("counting", not_a_number, target="redis"), gen.generation,
                batch(recorded(2)), 1, 2)  # fmt: skip

    def increment(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
        tx.hincrby("h", "f", 1)

    with pytest.raises(eb.InvalidInput, match="not an integer"):
        model.apply(eb.Projection("counting", increment, target="redis"), gen.generation,
                    batch(recorded(3)), 2, 3)  # fmt: skip


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda tx: tx.set("k", [1]), "str, int or float"),
        (lambda tx: tx.set("k", True), "str, int or float"),
        (lambda tx: tx.set("", 1), "non-empty str"),
        (lambda tx: tx.hincrby("k", "f", 1.5), "needs an int"),
        (lambda tx: (tx.set("k", 1), tx.hset("k", "f", 1)), "not a hash"),
        (lambda tx: (tx.hset("k", "f", 1), tx.get("k")), "holds a hash"),
    ],
)
def test_bad_writes_are_refused_with_a_clear_message(
    model: RedisReadModel, write: object, message: str
) -> None:
    gen = active(model)

    def handler(tx: RedisTx, event: object, rec: eb.RecordedEvent) -> None:
        write(tx)  # type: ignore[operator]

    with pytest.raises(eb.InvalidInput, match=message):
        model.apply(eb.Projection("counting", handler, target="redis"), gen.generation,
                    batch(recorded(1)), 0, 1)  # fmt: skip
    assert model.generations("counting")[0].position == 0


# -- generations ---------------------------------------------------------------------------------


def test_a_switch_deletes_the_old_generation_keys_in_bounded_batches(
    redis_url: str, redis_client: redis.Redis
) -> None:
    model = RedisReadModel(redis_url, scan_count=10, delete_batch=7)
    old = active(model)
    events = [recorded(p, {"amount": 1}, stream=f"s-{p}") for p in range(1, 51)]
    model.apply(COUNTING, old.generation, batch(*events), 0, 50)
    new = model.create_generation(COUNTING, active=False)
    model.apply(COUNTING, new.generation, batch(*events[:10]), 0, 10)

    # until the switch, queries see the old generation, whole
    assert len(model.keys("counting", "stream:*")) == 50
    assert model.hgetall("counting", "stream:s-50")["amount"] == "1"
    assert len(redis_client.keys(f"eventbook:counting:g{old.generation}:*")) == 100

    model.activate("counting", new.generation)

    assert redis_client.keys(f"eventbook:counting:g{old.generation}:*") == []
    assert len(model.keys("counting", "stream:*")) == 10
    assert model.hgetall("counting", "stream:s-50") == {}
    [kept] = model.generations("counting")
    assert (kept.generation, kept.active, kept.position) == (new.generation, True, 10)
    assert "drop:1" not in redis_client.hkeys("eventbook:counting:meta")
    model.close()


def test_drop_and_generation_numbers_are_never_reused(
    model: RedisReadModel, redis_client: redis.Redis
) -> None:
    first = active(model)
    model.apply(COUNTING, first.generation, batch(recorded(1)), 0, 1)
    second = model.create_generation(COUNTING, active=False)
    model.apply(COUNTING, second.generation, batch(recorded(1)), 0, 1)

    model.drop("counting", second.generation)
    assert [g.generation for g in model.generations("counting")] == [first.generation]
    assert redis_client.keys(f"eventbook:counting:g{second.generation}:*") == []
    assert model.get("counting", "last:s-1") == "1"

    model.drop("counting")  # all of them: as a reset does
    assert model.generations("counting") == []
    assert model.active_generation("counting") is None
    assert model.get("counting", "last:s-1") is None
    assert model.hgetall("counting", "stream:s-1") == {}
    assert model.keys("counting") == []
    assert [k for k in redis_client.keys("*") if k != "eventbook:counting:meta"] == []

    third = active(model)
    assert third.generation == second.generation + 1
    assert (third.position, third.active) == (0, True)
    with pytest.raises(AlreadyApplied):  # a runner still busy with a dropped generation
        model.apply(COUNTING, first.generation, batch(recorded(2)), 1, 2)
    with pytest.raises(eb.InvalidInput, match="no generation 99"):
        model.activate("counting", 99)


def test_a_failure_mark_stops_a_generation_until_cleared(model: RedisReadModel) -> None:
    gen = active(model)
    model.mark_failed("counting", gen.generation, 7, "RuntimeError: boom")
    [stopped] = model.generations("counting")
    assert (stopped.status, stopped.failed_position, stopped.error) == (
        "stopped",
        7,
        "RuntimeError: boom",
    )
    assert stopped.updated_at is not None

    model.clear_failure("counting", gen.generation)
    [running] = model.generations("counting")
    assert (running.status, running.failed_position, running.error) == ("running", 0, "")

    model.mark_failed("counting", 42, 1, "a generation that is not there")  # nothing happens
    assert [g.generation for g in model.generations("counting")] == [gen.generation]


def test_setup_writes_the_first_keys_of_a_new_generation(model: RedisReadModel) -> None:
    projection = eb.Projection(
        "counting", counting, target="redis", setup=lambda tx: tx.set("schema", "1")
    )
    gen = model.create_generation(projection, active=True)
    assert model.get("counting", "schema") == "1"
    assert gen.version == 1


def test_queries_never_see_a_half_deleted_generation(redis_url: str) -> None:
    """Readers in a loop while generations switch: every answer is a whole generation."""
    model = RedisReadModel(redis_url, delete_batch=3)
    events = [recorded(p, {"amount": 1}, stream="s") for p in range(1, 21)]
    gen = active(model)
    model.apply(COUNTING, gen.generation, batch(*events), 0, 20)
    stop = threading.Event()
    answers: list[dict[str, str]] = []

    def read() -> None:
        reader = RedisReadModel(redis_url)
        while not stop.is_set():
            answers.append(reader.hgetall("counting", "stream:s"))
        reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    for _ in range(15):
        fresh = model.create_generation(COUNTING, active=False)
        model.apply(COUNTING, fresh.generation, batch(*events), 0, 20)
        model.activate("counting", fresh.generation)
    stop.set()
    thread.join()
    assert answers
    assert all(a == {"events": "20", "amount": "20", "position": "20"} for a in answers)
    model.close()


def test_a_prefix_with_glob_characters_deletes_only_its_own_keys(
    redis_url: str, redis_client: redis.Redis
) -> None:
    odd = RedisReadModel(redis_url, prefix="t[1]*:")
    plain = RedisReadModel(redis_url, prefix="t1x:")
    for model in (odd, plain):
        gen = active(model)
        model.apply(COUNTING, gen.generation, batch(recorded(1)), 0, 1)
    odd.drop("counting")
    assert odd.keys("counting") == []
    assert plain.keys("counting") == ["last:s-1", "stream:s-1"]
    assert all(not k.startswith("t[1]*:counting:g") for k in redis_client.keys("*"))
    odd.close()
    plain.close()


# -- opening it -----------------------------------------------------------------------------------


def test_open_read_models_needs_a_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTBOOK_REDIS_URL", raising=False)
    store = eb.open_store("memory://")
    with pytest.raises(eb.InvalidInput, match=r"needs a Redis server.*EVENTBOOK_REDIS_URL"):
        open_read_models(store, {"sqlite", "redis"})
    with pytest.raises(eb.InvalidInput, match=r"\['nosql'\] are not available"):
        open_read_models(store, {"nosql"})
    store.close()


def test_open_read_models_takes_the_url_from_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTBOOK_REDIS_URL", redis_url)
    store = eb.open_store("memory://")
    models = open_read_models(store, {"redis"})
    assert isinstance(models["redis"], RedisReadModel)
    assert models["redis"].url == redis_url
    models["redis"].close()
    store.close()


def test_an_unreachable_server_is_a_clear_error() -> None:
    from eventbook.testing.servers import free_port

    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(
        eb.InvalidInput, match=r"cannot use the Redis read model at redis://\*\*\*@"
    ):
        RedisReadModel(url)
    with pytest.raises(eb.InvalidInput, match="cannot use the Redis read model"):
        RedisReadModel("http://127.0.0.1:1/")


def test_the_test_server_is_stopped_by_its_pid() -> None:
    with redis_server() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert ping(port)
    assert not ping(port)
