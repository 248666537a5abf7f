"""The store's side of nats-py: the store URL, a private event loop in a daemon thread (nats-py
is asyncio; the store API is synchronous), requests to the JetStream API and direct gets.

Every call from the store's thread runs as one coroutine on the loop (`Runtime.run`), so state
that only coroutines touch (the stream-version cache) needs no lock.
"""

from __future__ import annotations

import _thread
import asyncio
import base64
import contextlib
import json
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from eventbook.errors import InvalidInput, StoreUnavailable

T = TypeVar("T")
CONNECT_SECONDS = 5.0  # how long opening a store tries to reach a server
CONNECT_ATTEMPTS = 3  # rounds over the servers before opening a store fails
REQUEST_SECONDS = 10.0  # one JetStream API request or direct get
DEFAULT_STREAM = "EVENTBOOK"
ERR_NO_MESSAGE = 10037  # MSG.GET: no message found
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_OURS = ("stream", "replicas")  # query parameters of the store URL


@dataclass(frozen=True)
class Target:
    """Where a nats:// store lives: the servers, the JetStream stream, its replica count
    (None: as the stream has it, 1 for a new one)."""

    servers: list[str]
    stream: str
    replicas: int | None
    where: str


def parse_url(url: str, stream: str | None = None, replicas: int | None = None) -> Target:
    """`nats://HOST:PORT[,nats://HOST2:PORT2...][?stream=NAME&replicas=N]`."""
    head, _, query = url.partition("?")
    servers = [s.strip() for s in head.split(",") if s.strip()]
    if not servers:
        raise InvalidInput(f"NATS URL {url!r} names no server; use nats://HOST:PORT")
    for server in servers:
        parts = urlsplit(server if "://" in server else f"nats://{server}")
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise InvalidInput(
                f"NATS URL {url!r}: {server!r} is not nats://HOST:PORT (several servers are "
                "separated by commas)"
            )
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - set(_OURS))
    if unknown:
        raise InvalidInput(
            f"NATS URL {url!r}: unknown parameter(s) {', '.join(unknown)}; it takes "
            + ", ".join(f"{name}=" for name in _OURS)
        )
    name = stream if stream is not None else params.get("stream", DEFAULT_STREAM)
    if not isinstance(name, str) or not _STREAM_NAME.fullmatch(name):
        raise InvalidInput(
            f"NATS stream name must be 1-64 letters, digits, '-' or '_', got {name!r}"
        )
    count: object = replicas if replicas is not None else params.get("replicas")
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if count is not None and (
        not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 5
    ):
        raise InvalidInput(f"replicas must be an integer 1..5, got {count!r}")
    hosts = ",".join(urlsplit(s if "://" in s else f"nats://{s}").netloc for s in servers)
    return Target(servers, name, count, f"NATS at {hosts.rsplit('@', 1)[-1]}")


class Runtime:
    """A private asyncio loop in a daemon thread, and the nats-py client that lives on it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="eventbook-nats", daemon=True
        )
        self._thread.start()
        self.nc: Client | None = None
        try:
            self.nc = self.run(self._connect(), CONNECT_SECONDS * 2)
        except BaseException:
            self.close()
            raise

    async def _connect(self) -> Client:
        async def quiet(_error: Exception) -> None:  # nats-py logs and retries on its own
            return None

        try:
            nc = await nats.connect(
                self.target.servers,
                connect_timeout=CONNECT_SECONDS,
                # a few tries to open (nats-py waits for ever with -1, and with 0), then for
                # ever: a server that restarts or fails over is waited for by every call
                max_reconnect_attempts=CONNECT_ATTEMPTS,
                reconnect_time_wait=0.25,
                allow_reconnect=True,
                error_cb=quiet,
                disconnected_cb=None,
            )
        except (TimeoutError, NatsError, OSError) as exc:
            raise StoreUnavailable(self.target.where, exc) from None
        nc.options["max_reconnect_attempts"] = -1
        return nc

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for its result (from any other thread).

        A bare lock, not run_coroutine_threadsafe's futures: the hop between threads is most
        of an append's own cost (62 against 104 µs a round trip on the reference machine)."""
        finished = _thread.allocate_lock()
        finished.acquire()
        tasks: list[asyncio.Task[T]] = []

        def start() -> None:
            task = self.loop.create_task(coro)
            task.add_done_callback(lambda _task: finished.release())
            tasks.append(task)

        self.loop.call_soon_threadsafe(start)
        if not finished.acquire(timeout=-1 if timeout is None else timeout):
            self.loop.call_soon_threadsafe(lambda: tasks and tasks[0].cancel())
            raise StoreUnavailable(self.target.where, "no answer in time")
        return tasks[0].result()

    def call_soon(self, fn: Callable[[], Awaitable[Any]]) -> None:
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(fn()))  # type: ignore[arg-type]

    @property
    def max_payload(self) -> int:
        assert self.nc is not None
        return self.nc.max_payload

    def close(self) -> None:
        if self.nc is not None:
            nc, self.nc = self.nc, None
            # closing a broken connection: nothing is left to release
            with contextlib.suppress(Exception):
                self.run(nc.close(), CONNECT_SECONDS)
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(CONNECT_SECONDS)
        if not self._thread.is_alive():
            self.loop.close()


class ApiError(Exception):
    """An error answer of the JetStream API: its code and description."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} (error {err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description


def api_answer(msg: Msg) -> dict[str, Any]:
    """The JSON of a JetStream API answer; an error answer raises ApiError."""
    if msg.headers and msg.headers.get("Status") == "503":
        raise NoRespondersError
    answer = json.loads(msg.data)
    error = answer.get("error")
    if error:
        raise ApiError(error.get("code", 0), error.get("err_code", 0), error.get("description", ""))
    return answer


async def api(nc: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    return api_answer(await nc.request(subject, payload, timeout=REQUEST_SECONDS))


async def direct_get(nc: Client, stream: str, body: dict[str, Any]) -> Msg | None:
    """One message by a direct get (`seq`, `last_by_subj`, `next_by_subj`), None if none."""
    msg = await nc.request(
        f"$JS.API.DIRECT.GET.{stream}", json.dumps(body).encode(), timeout=REQUEST_SECONDS
    )
    status = msg.headers.get("Status") if msg.headers else None
    if status is None:
        return msg
    if status == "404":
        return None
    if status == "503":
        raise NoRespondersError
    raise ApiError(int(status), 0, msg.headers.get("Description", "") if msg.headers else "")


class LeaderMsg:
    """A message as the stream leader's MSG.GET answers it, shaped like a direct get's."""

    __slots__ = ("data", "headers")

    def __init__(self, message: dict[str, Any]) -> None:
        self.data = base64.b64decode(message.get("data") or b"")
        self.headers = {
            "Nats-Sequence": str(message["seq"]),
            "Nats-Subject": message["subject"],
            "Nats-Time-Stamp": message["time"],
        }


async def leader_get(nc: Client, stream: str, body: dict[str, Any]) -> Any:
    """One message from the stream's leader (`$JS.API.STREAM.MSG.GET`), None if none.

    In a cluster any replica that considers itself current answers a direct get, and one
    that has not applied the latest appends answers from an older state; an append's
    lookups (is this commit id stored? where did my retried publish land?) must not be
    misled by that, so they ask the leader."""
    try:
        answer = await api(nc, f"$JS.API.STREAM.MSG.GET.{stream}", body)
    except ApiError as exc:
        if exc.err_code == ERR_NO_MESSAGE:
            return None
        raise
    return LeaderMsg(answer["message"])


async def direct_batch(nc: Client, stream: str, body: dict[str, Any]) -> list[Msg]:
    """Up to body["batch"] messages by one batched direct get (in sequence order)."""
    inbox = nc.new_inbox()
    queue: asyncio.Queue[Msg] = asyncio.Queue()

    async def take(msg: Msg) -> None:
        queue.put_nowait(msg)

    sub = await nc.subscribe(inbox, cb=take)
    try:
        await nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(body).encode(), reply=inbox)
        found: list[Msg] = []
        while True:
            msg = await asyncio.wait_for(queue.get(), REQUEST_SECONDS)
            status = msg.headers.get("Status") if msg.headers else None
            if status is None:
                found.append(msg)
            elif status in ("204", "404"):  # end of batch; nothing (more) to get
                return found
            elif status == "503":
                raise NoRespondersError
            elif not msg.data and not found and status == "408":
                return found
            else:
                raise ApiError(int(status), 0, msg.headers.get("Description", ""))
    except TimeoutError:
        raise NatsTimeout from None
    finally:
        await sub.unsubscribe()


def parse_time(stamp: str) -> datetime:
    """A `Nats-Time-Stamp` (RFC 3339, nanoseconds, UTC) as an aware datetime (microseconds)."""
    stamp = stamp.rstrip("Z")
    base, _, fraction = stamp.partition(".")
    micros = int((fraction + "000000")[:6])
    return datetime.fromisoformat(base).replace(microsecond=micros, tzinfo=UTC)


UNREACHABLE = (NatsError, OSError, asyncio.TimeoutError)  # a server gone, a timeout


__all__ = [
    "UNREACHABLE",
    "ApiError",
    "Runtime",
    "Target",
    "api",
    "direct_batch",
    "direct_get",
    "leader_get",
    "parse_time",
    "parse_url",
]
