"""The outbox on a real NATS JetStream server: the stream and subjects, message ids and
headers, duplicates dropped, an unreachable or restarted server, durable consumers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from outbox_support import stream_messages

import eventbook as eb
from eventbook.outbox import Consumer, MemoryCheckpoint, NatsBroker, Relay, subject_for
from eventbook.testing.nats_server import NatsServer, nats_server
from eventbook.testing.servers import free_port


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    with nats_server() as started:
        yield started


@pytest.fixture
def store(tmp_path: Path) -> Iterator[eb.EventStore]:
    with eb.open_store(tmp_path / "log", sync="none") as opened:
        yield opened


def fill(store: eb.EventStore, count: int) -> None:
    for i in range(count):
        store.append([eb.NewEvent(f"order-{i % 3}", "Placed", {"i": i})])
        store.append([eb.NewEvent(f"pay.ment-{i % 2}", "Paid", {"i": i})])


def apply(db: sqlite3.Connection, event: eb.RecordedEvent) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS fx (event_id TEXT, stream TEXT, version INTEGER)")
    db.execute("INSERT INTO fx VALUES (?, ?, ?)", (event.id, event.stream, event.version))


def test_events_land_on_category_subjects_with_ids_and_headers_once(
    server: NatsServer, store: eb.EventStore
) -> None:
    fill(store, 10)
    with NatsBroker(server.url, stream="T1", subject_prefix="t1.out") as broker:
        Relay(store, broker, MemoryCheckpoint(), batch_events=7).catch_up()
        Relay(store, broker, MemoryCheckpoint()).catch_up()  # again: dropped as duplicates
    events = list(store.read_all())
    msgs = stream_messages(server.url, "T1")
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [e.id for e in events]
    assert msgs[1].subject == subject_for("t1.out", "pay.ment-0") == "t1.out.pay~2Ement"
    assert msgs[1].headers["Eventbook-Stream"] == "pay.ment-0"
    assert msgs[1].headers["Eventbook-Position"] == "2"
    assert msgs[1].headers["Eventbook-Version"] == "1"
    assert msgs[1].headers["Eventbook-Type"] == "Paid"


def test_a_stream_with_other_subjects_is_refused(server: NatsServer) -> None:
    with NatsBroker(server.url, stream="T2", subject_prefix="t2"):
        pass
    with pytest.raises(eb.InvalidInput, match=r"T2.*holds the subjects.*other\.>"):
        NatsBroker(server.url, stream="T2", subject_prefix="other")


def test_an_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(eb.StoreUnavailable, match=r"cannot reach NATS at 127\.0\.0\.1"):
        NatsBroker(f"nats://127.0.0.1:{free_port()}")
    with pytest.raises(eb.InvalidInput, match="nats://HOST:PORT"):
        NatsBroker("http://example.com")


def test_consumers_rewind_to_their_ack_floor_and_apply_once(
    server: NatsServer, store: eb.EventStore, tmp_path: Path
) -> None:
    fill(store, 30)
    db = tmp_path / "fx.sqlite"
    with NatsBroker(server.url, stream="T3", subject_prefix="t3") as broker:
        Relay(store, broker, MemoryCheckpoint()).catch_up()
        first = broker.consumer("c", ["t3.>"])
        got = first.fetch(10, 1)
        assert [d.sequence for d in got] == list(range(1, 11))
        for d in got[:4]:
            first.ack(d)
        again = broker.consumer("c", ["t3.>"])  # as after a crash of the first's process
        assert [d.sequence for d in again.fetch(3, 1)] == [5, 6, 7]
        with Consumer(broker, "c2", apply, db, workers=2, categories=["order"]) as consumer:
            while consumer.run_once(0.5):
                pass
            assert consumer.applied == 30
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT event_id, stream, version FROM fx ORDER BY rowid").fetchall()
    assert sorted(r[0] for r in rows) == sorted(
        e.id for e in store.read_all() if e.stream.startswith("order")
    )


def test_the_relay_rides_out_a_server_crash(tmp_path: Path, store: eb.EventStore) -> None:
    with nats_server() as own:
        broker = NatsBroker(own.url, stream="T4", subject_prefix="t4")
        relay = Relay(store, broker, tmp_path / "cp", retry_seconds=0.05).start()
        try:
            fill(store, 20)
            assert relay.wait_for(store.head_position(), 20)
            own.stop("kill")
            fill(store, 20)
            assert not relay.wait_for(store.head_position(), 0.3)
            assert relay.error and "cannot reach NATS" in relay.error
            own.start()  # the same port and store directory
            assert relay.wait_for(store.head_position(), 30)
        finally:
            relay.stop()
            broker.close()
        msgs = stream_messages(own.url, "T4")
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [e.id for e in store.read_all()]


def positions(msgs: list) -> list[int]:
    return [int(m.headers["Eventbook-Position"]) for m in msgs]


def test_batches_that_partly_repeat_published_events_store_each_once_in_order(
    server: NatsServer, store: eb.EventStore
) -> None:
    fill(store, 20)  # positions 1..40
    with NatsBroker(server.url, stream="T5", subject_prefix="t5") as broker:
        Relay(store, broker, MemoryCheckpoint(), batch_events=7).catch_up()
        assert (broker.batches, broker.fallbacks) == (6, 0)  # 5 x 7 + 5, all atomic
        fill(store, 10)  # positions 41..60
        # restarted from an older checkpoint, with other batch boundaries: 12..21 and 22..31
        # were published, 32..41 partly (41 is new), 42..51 and 52..60 are new
        Relay(store, broker, MemoryCheckpoint(11), batch_events=10).catch_up()
        assert (broker.batches, broker.fallbacks) == (8, 3)
    msgs = stream_messages(server.url, "T5")
    assert positions(msgs) == list(range(1, 61))
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [e.id for e in store.read_all()]
    assert [m.seq for m in msgs] == list(range(1, 61))


def test_a_batch_whose_acknowledgement_was_lost_is_stored_once(
    server: NatsServer, store: eb.EventStore
) -> None:
    fill(store, 10)
    with NatsBroker(server.url, stream="T6", subject_prefix="t6") as broker:
        commit = broker._commit
        lost: list[dict] = []

        async def lose_the_first_answer(subject: str, data: bytes, headers: dict) -> dict:
            answer = await commit(subject, data, headers)  # the server stored the batch
            if not lost:
                lost.append(answer)
                raise TimeoutError  # ... and the relay never heard of it
            return answer

        broker._commit = lose_the_first_answer  # type: ignore[method-assign]
        relay = Relay(store, broker, MemoryCheckpoint(), batch_events=8, retry_seconds=0.01)
        with relay.start():
            fill(store, 10)
            assert relay.wait_for(store.head_position(), 20)
        assert lost and lost[0]["count"] == 8
        assert broker.fallbacks >= 1  # the retry was refused as a duplicate, then deduped
    msgs = stream_messages(server.url, "T6")
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [e.id for e in store.read_all()]


def test_a_stream_without_atomic_batches_is_updated_to_allow_them(
    server: NatsServer, store: eb.EventStore
) -> None:
    import nats
    from nats.js import api

    async def make_and_read(create: bool) -> bool:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            if create:
                await js.add_stream(api.StreamConfig(name="T7", subjects=["t7.>"]))
            return bool((await js.stream_info("T7")).config.allow_atomic)
        finally:
            await nc.close()

    assert not asyncio.run(make_and_read(True))
    fill(store, 5)
    with NatsBroker(server.url, stream="T7", subject_prefix="t7") as broker:
        assert asyncio.run(make_and_read(False))
        Relay(store, broker, MemoryCheckpoint()).catch_up()
        assert broker.batches == 1
    assert positions(stream_messages(server.url, "T7")) == list(range(1, 11))


def test_batches_are_split_to_the_servers_limit(tmp_path: Path, store: eb.EventStore) -> None:
    folder = json.dumps(str(tmp_path / "js"))
    limited = f"jetstream {{ store_dir: {folder}, limits {{ batch {{ max_msgs: 6 }} }} }}"
    fill(store, 10)
    with nats_server(extra_config=limited) as own, NatsBroker(own.url) as broker:
        Relay(store, broker, MemoryCheckpoint(), batch_events=20).catch_up()
        assert broker.batch_messages == 6
        assert broker.fallbacks == 0
        msgs = stream_messages(own.url, "OUTBOX")
    assert positions(msgs) == list(range(1, 21))
