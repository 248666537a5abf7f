"""The NATS store beyond the shared contract: subject tokens for any stream id, and bad input
(an unreachable server, a stream made with another configuration or whose subjects another
stream takes, an event larger than the server's max_payload): a clear error, nothing written."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

import eventbook as eb
from eventbook.backends.nats import subjects
from eventbook.testing.nats_server import nats_server
from eventbook.testing.servers import free_port

TOKEN = re.compile(r"[^\s.*>]+")


@given(st.text(min_size=1, max_size=60))
def test_tokens_round_trip_and_are_valid_subject_tokens(text: str) -> None:
    token = subjects.encode_token(text)
    assert TOKEN.fullmatch(token) and token.isascii()
    assert subjects.decode_token(token) == text
    assert token != subjects.NO_COMMIT


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_different_ids_never_share_a_token(a: str, b: str) -> None:
    if a != b:
        assert subjects.encode_token(a) != subjects.encode_token(b)


def test_readable_ids_stay_readable() -> None:
    assert subjects.event_subject("EB", "account-42", None) == "EB.account-42._"
    assert subjects.event_subject("EB", "a.b c", "cmd:1") == "EB.a_2Eb_20c.cmd_3A1"
    assert subjects.stream_of_subject("EB.a_2Eb_20c.cmd_3A1") == "a.b c"


def test_stream_ids_nats_cannot_carry_are_stored_and_read(nats_url: str) -> None:
    odd = ["a.b-1", "star*-1", "gt>-1", "sp ace-1", "_under-1", "é-1"]
    with eb.open_store(nats_url, stream="odd_ids") as store:
        for i, name in enumerate(odd):
            store.append([eb.NewEvent(name, "Happened")], commit_id=f"c.{i}*>")
        assert [info.stream for info in store.streams()] == sorted(odd)
        for i, name in enumerate(odd):
            assert [e.stream for e in store.read_stream(name)] == [name]
            assert [e.stream for e in store.read_commit(f"c.{i}*>")] == [name]


def test_an_unreachable_server_is_a_clear_error() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(eb.StoreUnavailable, match=r"NATS at 127\.0\.0\.1"):
        eb.open_store(url)
    assert time.monotonic() - started < 30


async def _add_stream(url: str, config: dict) -> None:
    nc = Client()
    await nc.connect(url)
    try:
        await nc.jetstream().add_stream(**config)
    finally:
        await nc.close()


def test_a_stream_with_another_configuration_is_refused(nats_url: str) -> None:
    asyncio.run(_add_stream(nats_url, {"name": "OTHERCONF", "subjects": ["OTHERCONF.>"]}))
    with pytest.raises(eb.InvalidInput, match=r"allow_atomic=False \(eventbook needs True\)"):
        eb.open_store(nats_url, stream="OTHERCONF")


def test_subjects_another_stream_takes_are_refused(nats_url: str) -> None:
    asyncio.run(_add_stream(nats_url, {"name": "SQUATTER", "subjects": ["TAKEN.>"]}))
    with pytest.raises(eb.InvalidInput, match="refused to create JetStream stream 'TAKEN'"):
        eb.open_store(nats_url, stream="TAKEN")


def test_bad_options_are_refused(nats_url: str) -> None:
    with pytest.raises(eb.InvalidInput, match="stream name"):
        eb.open_store(nats_url, stream="has.dot")
    with pytest.raises(eb.InvalidInput, match="replicas"):
        eb.open_store(nats_url + "?replicas=9")
    with pytest.raises(eb.InvalidInput, match="unknown parameter"):
        eb.open_store(nats_url + "?shema=x")
    with pytest.raises(eb.InvalidInput, match="unknown option"):
        eb.open_store(nats_url, schema="x")


def test_an_event_larger_than_max_payload_writes_nothing() -> None:
    with nats_server() as server, eb.open_store(server.url) as store:  # max_payload 1 MiB
        store.append([eb.NewEvent("a-1", "Small")])
        big = {"blob": "x" * (1024 * 1024 - 100)}
        with pytest.raises(eb.InvalidInput, match="max_payload"):
            store.append([eb.NewEvent("a-1", "Small"), eb.NewEvent("b-1", "Big", big)])
        assert [e.type for e in store.read_all()] == ["Small"]
        assert store.stream_version("b-1") == 0


def test_a_readonly_store_writes_nothing(nats_url: str) -> None:
    with pytest.raises(eb.InvalidInput, match="no JetStream stream"):
        eb.open_store(nats_url, stream="NEVER_MADE", readonly=True)
    with eb.open_store(nats_url, stream="RO") as writer:
        writer.append([eb.NewEvent("a-1", "Happened")])
    with eb.open_store(nats_url, stream="RO", readonly=True) as reader:
        with pytest.raises(eb.StoreReadOnly):
            reader.append([eb.NewEvent("a-1", "Happened")])
        assert reader.head_position() == 1


def test_commit_ids_hold_beyond_the_duplicate_window(nats_url: str) -> None:
    from eventbook.backends.nats.connection import parse_url
    from eventbook.backends.nats.store import stream_config

    config = stream_config(parse_url(nats_url, "SHORTWINDOW"))
    config["duplicate_window"] = 200_000_000  # 0.2 s instead of two minutes
    asyncio.run(_add_stream(nats_url, config))
    with eb.open_store(nats_url, stream="SHORTWINDOW") as store:
        events = [eb.NewEvent("a-1", "Opened"), eb.NewEvent("b-1", "Opened")]
        first = store.append(events, commit_id="c-1")
        store.append([eb.NewEvent("a-1", "Other")])
        time.sleep(0.5)  # the server no longer remembers the msg id "c-1"
        assert store.append(events, commit_id="c-1") == first
        with pytest.raises(eb.DuplicateCommit):
            store.append([eb.NewEvent("b-1", "Changed")], commit_id="c-1")
        assert store.head_position() == 3
    # a second store object, with no cache of its own, finds the commit too
    with eb.open_store(nats_url, stream="SHORTWINDOW") as again:
        assert again.append(events, commit_id="c-1") == first
        assert again.head_position() == 3
