"""The outbox's broker on NATS JetStream (nats-py).

One JetStream stream (default `OUTBOX`) holds the subjects `<prefix>.>` (default
`outbox.>`); it is created when missing (file storage, the given duplicate window) and
refused when it exists with subjects that do not cover the prefix. `publish` sends a batch
with `publish_async` (each message with `Nats-Msg-Id` = the event id and
`Nats-Expected-Stream`), then awaits every acknowledgement together. Any failure drops the
connection, and the next call opens a fresh one: the server receives what one connection
sent in order, so a retry of the batch never stores a later event before an earlier one (the
ones stored already are dropped as duplicates by their ids).

Consumers are durable pull consumers with explicit acks, one per name; opening one reads its
ack floor, deletes it and creates it again delivering from the floor + 1, so a restarted
consumer gets every unacknowledged message again in stream order before any newer one.

nats-py is asyncio: the broker runs a private event loop in a daemon thread and calls into it
with `asyncio.run_coroutine_threadsafe`, so it is used from plain threads like every store.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from eventbook.errors import InvalidInput, StoreUnavailable
from eventbook.outbox.broker import (
    DEFAULT_PREFIX,
    DUPLICATE_WINDOW_SECONDS,
    Delivery,
    Message,
    check_prefix,
    decode_event,
)

T = TypeVar("T")

DEFAULT_STREAM = "OUTBOX"
CONNECT_SECONDS = 5.0
ACK_SECONDS = 10.0  # for the acknowledgements of one batch
ACK_WAIT_SECONDS = 30.0  # a consumer's unacknowledged message is delivered again after this
MAX_ACK_PENDING = 10_000  # messages a consumer may hold unacknowledged
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class _Loop:
    """A private asyncio event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="eventbook-nats-broker", daemon=True
        )
        self.thread.start()

    def call(self, make: Awaitable[T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(make, self.loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()  # (a no-op when it is done)
            raise

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


def _where(url: str) -> str:
    hosts = []
    for part in url.split(","):
        found = urlsplit(part.strip())
        hosts.append(f"{found.hostname}:{found.port or 4222}")
    return "NATS at " + ", ".join(hosts)


class NatsBroker:
    """Publishes to and consumes from a JetStream stream on the NATS server(s) at `url`
    (`nats://HOST:PORT`, several comma-separated)."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_PREFIX,
        duplicate_window: float = DUPLICATE_WINDOW_SECONDS,
        ack_seconds: float = ACK_SECONDS,
    ) -> None:
        if not isinstance(url, str) or not all(
            p.strip().startswith(("nats://", "tls://")) for p in url.split(",")
        ):
            raise InvalidInput(
                f"broker URL {url!r} is not allowed: use nats://HOST:PORT (several "
                "comma-separated for a cluster)"
            )
        if not isinstance(stream, str) or not _STREAM_NAME.match(stream):
            raise InvalidInput(
                f"JetStream stream name {stream!r} is not allowed: use 1 to 64 letters, "
                "digits, '_' or '-'"
            )
        if (
            isinstance(duplicate_window, bool)
            or not isinstance(duplicate_window, int | float)
            or not 1 <= duplicate_window <= 7 * 86400
        ):
            raise InvalidInput(
                f"duplicate_window must be 1 to {7 * 86400} seconds, got {duplicate_window!r}"
            )
        self.url = url
        self.stream = stream
        self.subject_prefix = check_prefix(subject_prefix)
        self.duplicate_window = float(duplicate_window)
        self.ack_seconds = ack_seconds
        self.where = _where(url)
        self._loop = _Loop()
        self._nc: Any = None
        self._js: Any = None
        self._lock = threading.Lock()
        self.closed = False
        try:
            self._call(self._ensure_stream(), CONNECT_SECONDS + 10)
        except BaseException:
            self.close()
            raise

    # -- connection ------------------------------------------------------------------------

    def _call(self, make: Awaitable[T], timeout: float) -> T:
        """Run a coroutine on the private loop; a NATS failure drops the connection (the next
        call opens a fresh one) and is raised as StoreUnavailable."""
        if self.closed:
            raise StoreUnavailable(self.where, "the broker was closed")
        try:
            return self._loop.call(make, timeout)
        except (InvalidInput, StoreUnavailable):
            raise
        except Exception as error:
            self._loop.call(self._drop(), 5)
            raise StoreUnavailable(self.where, error) from None

    async def _connected(self) -> Any:
        if self._nc is not None and self._nc.is_connected:
            return self._js
        await self._drop()
        import nats

        async def quiet(_error: Exception) -> None:
            return None

        self._nc = await nats.connect(
            servers=[u.strip() for u in self.url.split(",")],
            connect_timeout=CONNECT_SECONDS,
            allow_reconnect=False,  # a fresh connection per failure: see the module docstring
            max_reconnect_attempts=1,  # one try per server (nats-py waits for ever with 0)
            reconnect_time_wait=0.1,
            error_cb=quiet,
        )
        self._js = self._nc.jetstream(timeout=self.ack_seconds)
        return self._js

    async def _drop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2)

    async def _ensure_stream(self) -> None:
        from nats.js import api
        from nats.js.errors import NotFoundError

        js = await self._connected()
        want = f"{self.subject_prefix}.>"
        try:
            info = await js.stream_info(self.stream)
        except NotFoundError:
            config = api.StreamConfig(
                name=self.stream,
                subjects=[want],
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS,
                duplicate_window=self.duplicate_window,
            )
            await js.add_stream(config)
            return
        subjects = list(info.config.subjects or [])
        if want not in subjects:
            raise InvalidInput(
                f"the JetStream stream {self.stream} on {self.where} holds the subjects "
                f"{subjects}, not {want}: give the broker another stream name, or the subject "
                "prefix that stream was made for"
            )

    # -- publishing ------------------------------------------------------------------------

    def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        with self._lock:
            self._call(self._publish(messages), self.ack_seconds + CONNECT_SECONDS + 5)

    async def _publish(self, messages: Sequence[Message]) -> None:
        js = await self._connected()
        futures = []
        for m in messages:
            futures.append(
                await js.publish_async(
                    m.subject, m.data, headers=dict(m.headers), stream=self.stream
                )
            )
        await asyncio.wait_for(asyncio.gather(*futures), self.ack_seconds)

    # -- consuming -------------------------------------------------------------------------

    def consumer(self, name: str, subjects: Sequence[str]) -> NatsConsumer:
        with self._lock:
            sub = self._call(self._open_consumer(name, list(subjects)), CONNECT_SECONDS + 15)
        return NatsConsumer(self, name, sub)

    async def _open_consumer(self, name: str, subjects: list[str]) -> Any:
        from nats.js import api
        from nats.js.errors import NotFoundError

        js = await self._connected()
        start = 1
        try:
            info = await js.consumer_info(self.stream, name)
            start = info.ack_floor.stream_seq + 1 if info.ack_floor else 1
            await js.delete_consumer(self.stream, name)
        except NotFoundError:
            pass
        config = api.ConsumerConfig(
            durable_name=name,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_SECONDS,
            max_deliver=-1,
            max_ack_pending=MAX_ACK_PENDING,
            filter_subjects=subjects if len(subjects) > 1 else None,
            filter_subject=subjects[0] if len(subjects) == 1 else None,
        )
        await js.add_consumer(self.stream, config)
        return await js.pull_subscribe_bind(durable=name, stream=self.stream)

    async def _fetch(self, sub: Any, count: int, timeout: float) -> list[Delivery]:
        import nats.errors

        try:
            msgs = await sub.fetch(count, timeout=max(timeout, 0.05))
        except nats.errors.TimeoutError:
            return []
        return [
            Delivery(
                decode_event(m.data),
                m.subject,
                m.metadata.sequence.stream,
                m.metadata.num_delivered,
                m,
            )
            for m in msgs
        ]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self._loop.call(self._drop(), 5)
        self._loop.close()

    def __enter__(self) -> NatsBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NatsConsumer:
    """A durable pull consumer of the outbox stream (see NatsBroker.consumer)."""

    def __init__(self, broker: NatsBroker, name: str, sub: Any) -> None:
        self.broker = broker
        self.name = name
        self._sub = sub
        self._nc = broker._nc  # acks go over the connection the messages came on

    def fetch(self, count: int, timeout: float) -> list[Delivery]:
        self._check_connection()
        return self.broker._call(self.broker._fetch(self._sub, count, timeout), timeout + 10)

    def ack(self, delivery: Delivery) -> None:
        self._check_connection()
        self.broker._call(delivery.handle.ack(), 10)

    def _check_connection(self) -> None:
        if self.broker._nc is not self._nc or self._nc is None or not self._nc.is_connected:
            raise StoreUnavailable(self.broker.where, "the consumer's connection was lost")

    def close(self) -> None:
        nc = self._nc
        if nc is not None and self.broker._nc is nc and not self.broker.closed:
            with contextlib.suppress(Exception):
                self.broker._call(self._sub.unsubscribe(), 5)


__all__ = ["DEFAULT_STREAM", "NatsBroker", "NatsConsumer"]
