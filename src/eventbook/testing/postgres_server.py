"""A throwaway PostgreSQL server for tests and benchmarks: initdb in a temporary directory, a
free loopback port, stopped by its pid.

    from eventbook.testing.postgres_server import postgres_server

    with postgres_server() as server:
        server.url                  # "postgresql://eventbook@127.0.0.1:PORT/eventbook"
        server.stop("immediate")    # SIGQUIT: a crash, as far as the data is concerned
        server.start()              # the same data directory again (crash recovery runs)

The binaries are PostgreSQL's own (`initdb`, `postgres`): from the PATH, else Debian's
`/usr/lib/postgresql/<version>/bin` (the `postgresql` package; the project's `.ci/run`
installs it when neither is there). Without them this raises, saying how to get them; a test
never skips for want of a server. PostgreSQL refuses to run as root, so under root the server
runs as the `postgres` user (else `nobody`). `fsync` stays on: a test that stops the server
with "immediate" checks what a crash leaves.

`EVENTBOOK_TEST_PG_URL` names an existing server to use instead (`existing_postgres_url()`);
the tests then work in fresh schemas of its database and never start or stop it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eventbook.testing.servers import accepts, free_port, signal_and_wait

START_SECONDS = 30.0  # how long a server may take to accept connections (crash recovery too)
STOP_SECONDS = 15.0  # how long a fast shutdown is given before SIGKILL
USER = "eventbook"  # the superuser initdb creates; the database has the same name
ENV_URL = "EVENTBOOK_TEST_PG_URL"


def existing_postgres_url() -> str | None:
    """The URL of a server the tests should use instead of starting one, if one is named."""
    return os.environ.get(ENV_URL) or None


def postgres_bin_dir() -> Path:
    """The folder holding `initdb` and `postgres`: the PATH's, else Debian's newest."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb, postgres) to start a test server: install "
        "Debian's postgresql package (apt-get install postgresql; .ci/run does this), or set "
        f"{ENV_URL}=postgresql://USER@HOST:PORT/DB to use a server you have"
    )


class PostgresServer:
    """One PostgreSQL server process over a data directory of its own."""

    def __init__(self, folder: Path, bin_dir: Path, settings: dict[str, str]) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.bin_dir = bin_dir
        self.settings = settings
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._user = _server_user()

    @property
    def url(self) -> str:
        return self.url_for(USER)

    def url_for(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def init(self) -> None:
        if self._user is not None:
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )

    def start(self) -> None:
        """Start the server on its port (another free one if that was taken meanwhile)."""
        failures = []
        for _ in range(3):
            command = [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.folder}",
            ]
            for key, value in self.settings.items():
                command += ["-c", f"{key}={value}"]
            log = open(self.folder / "server.log", "ab")  # noqa: SIM115 (the child keeps it)
            try:
                self.process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.folder,
                    preexec_fn=self._as_server_user,
                )
            finally:
                log.close()
            if self._wait_until_up():
                return
            failures.append(f"port {self.port}: exit {self.process.poll()}: {self.log_tail()}")
            signal_and_wait(self.process, signal.SIGQUIT, STOP_SECONDS)
            self.port = free_port()
        raise RuntimeError("PostgreSQL did not start: " + "; ".join(failures))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server by its pid: "fast" (SIGINT: a clean shutdown) or "immediate"
        (SIGQUIT: every process exits at once, no shutdown checkpoint; the next start runs
        crash recovery, as after a power cut that spared the disk)."""
        signals = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}
        if mode not in signals:
            raise ValueError(f"stop mode must be one of {sorted(signals)}, got {mode!r}")
        signal_and_wait(self.process, signals[mode], STOP_SECONDS)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def log_tail(self, chars: int = 800) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _wait_until_up(self) -> bool:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            if accepts(self.port) and self._ready():
                return True
            time.sleep(0.05)
        return False

    def _ready(self) -> bool:
        """Whether the server takes a query (it accepts connections during crash recovery
        but refuses them until recovery ends)."""
        import psycopg

        try:
            with psycopg.connect(self.url_for("postgres"), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            cwd=self.folder,
            preexec_fn=self._as_server_user,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{command[0]} failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).decode(errors='replace')[-800:]}"
            )

    def _as_server_user(self) -> None:
        if self._user is not None:
            os.setgid(self._user.pw_gid)
            os.setgroups([])
            os.setuid(self._user.pw_uid)

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {USER}")


def _server_user() -> pwd.struct_passwd | None:
    """Who the server runs as: None (this user) unless this is root, which PostgreSQL
    refuses; then `postgres`, else `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and there is no postgres or nobody user to run as")


DEFAULT_SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "128MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "2GB",
    "log_min_messages": "warning",
}


@contextmanager
def postgres_server(**settings: str) -> Iterator[PostgresServer]:
    """Start a PostgreSQL server on a free loopback port with a database named `eventbook`;
    yield it; stop it by its pid and delete its files. Keyword arguments are server
    settings (`fsync="off"`, ...) over `DEFAULT_SETTINGS`."""
    bin_dir = postgres_bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="eventbook-pg-"))
    server = PostgresServer(folder, bin_dir, {**DEFAULT_SETTINGS, **settings})
    try:
        server.init()
        server.start()
        server.create_database()
        yield server
    finally:
        try:
            server.stop("fast")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
