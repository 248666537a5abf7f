"""The outbox on the in-process broker: subjects, the relay's checkpoint and retries, the
consumer's exactly-once effects, per-stream order, failures and rewinds."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import eventbook as eb
from eventbook.outbox import (
    Consumer,
    ConsumerStopped,
    Delivery,
    FileCheckpoint,
    MemoryBroker,
    MemoryCheckpoint,
    Relay,
    category_of,
    decode_event,
    decode_token,
    encode_event,
    encode_token,
    subject_for,
)
from eventbook.outbox.broker import check_prefix

STREAMS = ["order-1", "order-2", "payment-1", "payment-x.y", "$rejected-order-1", "ünï code-1"]


def fill(store: eb.EventStore, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for i in range(count):
        stream = rng.choice(STREAMS[:4])
        store.append([eb.NewEvent(stream, "Happened", {"i": i})])


def effect_handler(db: sqlite3.Connection, event: eb.RecordedEvent) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS effects (event_id TEXT, stream TEXT, version INTEGER, "
        "position INTEGER)"
    )
    db.execute(
        "INSERT INTO effects VALUES (?, ?, ?, ?)",
        (event.id, event.stream, event.version, event.position),
    )


def effects(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT event_id, stream, version, position FROM effects ORDER BY rowid"
        ).fetchall()


def check_exactly_once(store: eb.EventStore, rows: list[tuple]) -> None:
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "an effect was applied twice"
    assert set(ids) == {e.id for e in store.read_all()}, "an effect is missing"
    last: dict[str, int] = {}
    for _, stream, version, _ in rows:
        assert version == last.get(stream, 0) + 1, f"{stream}: {version} after {last.get(stream)}"
        last[stream] = version


def drain(consumer: Consumer, rounds: int = 1000) -> int:
    total = 0
    for _ in range(rounds):
        done = consumer.run_once(0.01)
        if not done:
            return total
        total += done
    raise AssertionError("the consumer never ran dry")


@pytest.fixture
def store(tmp_path: Path):
    with eb.open_store(tmp_path / "log", sync="none") as opened:
        yield opened


# -- subjects and messages ----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [*STREAMS, "-x", "a.b*c>d e~f-1", "x"])
def test_subject_tokens_are_valid_and_reversible(stream: str) -> None:
    token = encode_token(category_of(stream))
    assert token and not any(c in token for c in ".*> \t\r\n")
    assert decode_token(token) == category_of(stream)
    assert subject_for("bank.outbox", stream) == f"bank.outbox.{token}"


def test_categories_are_the_part_before_the_first_dash() -> None:
    assert category_of("order-1-2") == "order"
    assert category_of("order") == "order"
    assert encode_token("a.b") == "a~2Eb" and encode_token("~") == "~7E"


@pytest.mark.parametrize("prefix", ["", "a..b", ".a", "a.", "a b", "a.*", "a>", 5])
def test_a_bad_subject_prefix_is_refused(prefix: object) -> None:
    with pytest.raises(eb.InvalidInput, match="subject prefix"):
        check_prefix(prefix)
    with pytest.raises(eb.InvalidInput):
        MemoryBroker(subject_prefix=prefix)  # type: ignore[arg-type]


def test_an_event_survives_the_payload_round_trip(store: eb.EventStore) -> None:
    store.append(
        [eb.NewEvent("order-1", "Placed", {"n": 2**62, "s": "é", "l": [1, {"x": None}]})],
        commit_id="c-1",
        metadata={"actor": "me"},
    )
    (event,) = store.read_all()
    assert decode_event(encode_event(event)) == event
    with pytest.raises(eb.InvalidInput, match="not an eventbook event"):
        decode_event(b"[1, 2]")


# -- the relay ----------------------------------------------------------------------------------


def test_the_relay_publishes_every_event_in_order_with_ids_and_headers(
    store: eb.EventStore, tmp_path: Path
) -> None:
    fill(store, 300)
    broker = MemoryBroker(subject_prefix="bank")
    relay = Relay(store, broker, tmp_path / "relay.checkpoint", batch_events=7)
    assert relay.catch_up() == 300
    events = list(store.read_all())
    assert [m.id for m in broker.messages] == [e.id for e in events]
    first = broker.messages[0]
    assert first.subject == subject_for("bank", events[0].stream)
    assert first.headers["Nats-Msg-Id"] == events[0].id
    assert first.headers["Eventbook-Position"] == "1"
    assert first.headers["Eventbook-Version"] == "1"
    assert first.headers["Eventbook-Type"] == "Happened"
    assert json.loads((tmp_path / "relay.checkpoint").read_text())["position"] == 300
    assert broker.publish_calls == 43  # ceil(300 / 7)


def test_a_restarted_relay_resumes_after_its_checkpoint(
    store: eb.EventStore, tmp_path: Path
) -> None:
    fill(store, 50)
    broker = MemoryBroker()
    Relay(store, broker, tmp_path / "cp").catch_up()
    fill(store, 20, seed=2)
    relay = Relay(store, broker, tmp_path / "cp")
    assert relay.position == 50
    assert relay.catch_up() == 20
    assert len(broker.messages) == 70 and broker.duplicates == 0


def test_a_lost_checkpoint_republishes_and_the_broker_drops_the_duplicates(
    store: eb.EventStore, tmp_path: Path
) -> None:
    fill(store, 40)
    broker = MemoryBroker()
    Relay(store, broker, MemoryCheckpoint()).catch_up()
    Relay(store, broker, MemoryCheckpoint()).catch_up()  # a crash before any checkpoint
    assert len(broker.messages) == 40 and broker.duplicates == 40


@pytest.mark.parametrize("stored", [0, 1, 5, 9, 10])
def test_a_failed_publish_keeps_the_position_and_the_retry_keeps_the_order(
    store: eb.EventStore, stored: int
) -> None:
    fill(store, 30)
    broker = MemoryBroker()
    relay = Relay(store, broker, MemoryCheckpoint(), batch_events=10)
    relay.publish_batch()
    broker.fail_next_publish(stored)  # stores a prefix of the batch, then fails
    with pytest.raises(eb.StoreUnavailable):
        relay.publish_batch()
    assert relay.position == 10 and relay.checkpoint.load() <= 10
    relay.catch_up()
    assert [m.id for m in broker.messages] == [e.id for e in store.read_all()]


def test_the_relay_follows_live_appends_and_retries_a_broker_that_fails(
    store: eb.EventStore, tmp_path: Path
) -> None:
    broker = MemoryBroker()
    relay = Relay(store, broker, tmp_path / "cp", retry_seconds=0.01).start()
    try:
        fill(store, 100)
        broker.fail_next_publish(0)
        fill(store, 100, seed=3)
        assert relay.wait_for(store.head_position(), 10)
    finally:
        relay.stop()
    assert [m.id for m in broker.messages] == [e.id for e in store.read_all()]
    assert FileCheckpoint(tmp_path / "cp").load() == 200


def test_the_relay_works_on_a_memory_store() -> None:
    with eb.open_store("memory://") as memory:
        fill(memory, 25)
        broker = MemoryBroker()
        assert Relay(memory, broker, MemoryCheckpoint()).catch_up() == 25


def test_a_checkpoint_past_the_head_or_damaged_is_refused(
    store: eb.EventStore, tmp_path: Path
) -> None:
    fill(store, 3)
    FileCheckpoint(tmp_path / "cp").save(10)
    with pytest.raises(eb.InvalidInput, match="past the head"):
        Relay(store, MemoryBroker(), tmp_path / "cp")
    (tmp_path / "bad").write_text("{not json")
    with pytest.raises(eb.StoreCorrupted, match="not a relay checkpoint"):
        Relay(store, MemoryBroker(), tmp_path / "bad")


def test_the_checkpoint_file_is_replaced_atomically(tmp_path: Path) -> None:
    cp = FileCheckpoint(tmp_path / "cp", label="here")
    assert cp.load() == 0
    cp.save(5)
    cp.save(7)
    assert json.loads((tmp_path / "cp").read_text()) == {
        "format": 1,
        "position": 7,
        "label": "here",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp"]  # no temporary file left


@pytest.mark.parametrize(
    "options", [{"batch_events": 0}, {"batch_events": 10**6}, {"retry_seconds": -1}]
)
def test_bad_relay_options_are_refused(store: eb.EventStore, options: dict) -> None:
    with pytest.raises(eb.InvalidInput):
        Relay(store, MemoryBroker(), MemoryCheckpoint(), **options)


# -- the consumer -------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 4])
def test_the_consumer_applies_each_effect_once_in_stream_order(
    store: eb.EventStore, tmp_path: Path, workers: int
) -> None:
    fill(store, 500)
    broker = MemoryBroker()
    Relay(store, broker, MemoryCheckpoint()).catch_up()
    Relay(store, broker, MemoryCheckpoint()).catch_up()  # duplicates dropped by the broker
    broker.duplicate_window = 0  # now the broker stores duplicates: the consumer drops them
    Relay(store, broker, MemoryCheckpoint()).catch_up()
    assert len(broker.messages) == 1000
    db = tmp_path / "effects.sqlite"
    with Consumer(broker, "c", effect_handler, db, workers=workers, fetch_count=64) as consumer:
        assert drain(consumer) == 1000
        assert consumer.applied == 500 and consumer.skipped == 500
        assert consumer.processed(next(store.read_all()).id)
        assert consumer.stream_version("order-1") == store.stream_version("order-1")
    check_exactly_once(store, effects(db))


def test_a_consumer_filters_by_category(store: eb.EventStore, tmp_path: Path) -> None:
    fill(store, 100)
    broker = MemoryBroker()
    Relay(store, broker, MemoryCheckpoint()).catch_up()
    db = tmp_path / "payments.sqlite"
    with Consumer(broker, "pay", effect_handler, db, categories=["payment"]) as consumer:
        drain(consumer)
    assert {r[1] for r in effects(db)} == {"payment-1", "payment-x.y"}


def test_unacknowledged_messages_come_again_before_newer_ones(tmp_path: Path) -> None:
    with eb.open_store("memory://") as memory:
        fill(memory, 20)
        broker = MemoryBroker()
        relay = Relay(memory, broker, MemoryCheckpoint())
        relay.catch_up()
        first = broker.consumer("c", ["outbox.>"])
        got = first.fetch(10, 0)
        for d in got[:3] + got[5:7]:
            first.ack(d)
        assert first.ack_floor == 3
        second = broker.consumer("c", ["outbox.>"])  # as after a crash of the first
        again = [d.sequence for d in second.fetch(100, 0)]
        assert again == [4, 5, 8, 9, 10, *range(11, 21)]


def test_a_failing_handler_stops_its_stream_and_resumes_after_the_fix(
    store: eb.EventStore, tmp_path: Path
) -> None:
    for v in range(1, 6):
        store.append([eb.NewEvent("order-1", "Placed", {"v": v})])
        store.append([eb.NewEvent("payment-1", "Paid", {"v": v})])
    broker = MemoryBroker()
    Relay(store, broker, MemoryCheckpoint()).catch_up()
    broken = {"on": True}

    def handler(db: sqlite3.Connection, event: eb.RecordedEvent) -> None:
        if broken["on"] and event.stream == "order-1" and event.version == 3:
            raise RuntimeError("boom")
        effect_handler(db, event)

    db = tmp_path / "fx.sqlite"
    consumer = Consumer(broker, "c", handler, db, workers=2, attempts=2, retry_seconds=0.001)
    with pytest.raises(ConsumerStopped, match=r"order-1.*version 3.*RuntimeError: boom"):
        drain(consumer)
    assert consumer.stream_version("order-1") == 2
    broken["on"] = False
    drain(consumer)
    consumer.close()
    check_exactly_once(store, effects(db))


def test_a_lost_delivery_is_not_applied_past_and_comes_again(
    store: eb.EventStore, tmp_path: Path
) -> None:
    fill(store, 60)
    broker = MemoryBroker()
    Relay(store, broker, MemoryCheckpoint()).catch_up()
    db = tmp_path / "fx.sqlite"
    consumer = Consumer(broker, "c", effect_handler, db, fetch_count=10)
    source = consumer._source
    fetch = source.fetch  # type: ignore[union-attr]
    lost: list[Delivery] = []

    def lossy(count: int, timeout: float) -> list[Delivery]:
        got = fetch(count, timeout)
        if not lost and len(got) > 3 and got[1].event.version > 1:
            lost.append(got.pop(1))  # a delivery lost in transit, once
        return got

    source.fetch = lossy  # type: ignore[union-attr,method-assign]
    drain(consumer)
    assert lost and consumer.rewinds >= 1
    consumer.close()
    check_exactly_once(store, effects(db))


def test_a_handler_that_commits_is_refused(store: eb.EventStore, tmp_path: Path) -> None:
    fill(store, 1)
    broker = MemoryBroker()
    Relay(store, broker, MemoryCheckpoint()).catch_up()

    def committing(db: sqlite3.Connection, event: eb.RecordedEvent) -> None:
        db.execute("COMMIT")

    with (
        Consumer(broker, "c", committing, tmp_path / "x.sqlite") as consumer,
        pytest.raises(eb.InvalidInput, match="must not commit"),
    ):
        consumer.run_once(0)


def test_relay_and_consumer_together_in_threads(store: eb.EventStore, tmp_path: Path) -> None:
    broker = MemoryBroker()
    db = tmp_path / "fx.sqlite"
    relay = Relay(store, broker, tmp_path / "cp").start()
    consumer = Consumer(broker, "c", effect_handler, db, workers=3).start()
    try:
        writer = threading.Thread(target=fill, args=(store, 400))
        writer.start()
        writer.join()
        deadline = time.monotonic() + 20
        while consumer.applied < 400 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        relay.stop()
        consumer.close()
    check_exactly_once(store, effects(db))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"name": "a.b"}, "consumer name"),
        ({"workers": 0}, "workers"),
        ({"fetch_count": 0}, "fetch_count"),
        ({"categories": "order"}, "categories"),
        ({"synchronous": "OFF"}, "synchronous"),
    ],
)
def test_bad_consumer_options_are_refused(tmp_path: Path, options: dict, match: str) -> None:
    args = {"name": "c", **options}
    with pytest.raises(eb.InvalidInput, match=match):
        Consumer(MemoryBroker(), handler=effect_handler, database=tmp_path / "x", **args)
