"""The outbox's broker on NATS JetStream (nats-py).

One JetStream stream (default `OUTBOX`) holds the subjects `<prefix>.>` (default
`outbox.>`); it is created when missing (file storage, the given duplicate window, atomic
batch publish allowed), refused when it exists with subjects that do not cover the prefix,
and updated to allow atomic batch publish when it does not.

`publish` sends the messages as JetStream atomic batches (each message a core publish with
`Nats-Batch-Id`, `Nats-Batch-Sequence` 1..n, the last also `Nats-Batch-Commit: 1`, sent as a
request whose answer is the batch's acknowledgement), up to the server's batch limit (1,000
messages by default) at a time. The server stores a batch all or nothing, with one sync for the
whole of it: with `sync_interval: always` that is one fsync per batch instead of one per
message. Every message carries `Nats-Msg-Id` = the event id; a batch holding a message whose id
the server stored within its duplicate window is refused whole (error 10201), and that batch is
then published message by message (`publish_async` on one connection, acknowledgements awaited
together), so that the server drops the copies and stores the rest in order. An unknown outcome
(an acknowledgement missing, a connection lost) drops the connection, and the next call opens a
fresh one and publishes the same messages again under a new batch id: either the first batch
landed whole (the retry is refused as a duplicate and falls back, storing nothing twice) or
none of it did.

Consumers are durable pull consumers with explicit acks, one per name; opening one reads its
ack floor, deletes it and creates it again delivering from the floor + 1, so a restarted
consumer gets every unacknowledged message again in stream order before any newer one.

nats-py is asyncio: the broker runs a private event loop in a daemon thread and calls into it
with `asyncio.run_coroutine_threadsafe`, so it is used from plain threads like every store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import uuid
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
LIVENESS_SECONDS = 0.05  # how often a wait for acknowledgements checks the connection
BATCH_MESSAGES = 1000  # messages in one atomic batch: the server's default limit
ERR_ATOMIC_DISABLED = 10174  # "atomic publish is disabled" (the stream lacks allow_atomic)
ERR_BATCH_TOO_LARGE = 10199  # "atomic publish batch is too large: <limit>"
ERR_BATCH_DUPLICATE = 10201  # "atomic publish batch contains duplicate message id"
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


class BatchRefused(Exception):
    """The server refused an atomic batch (nothing of it was stored)."""

    def __init__(self, err_code: int, description: str) -> None:
        super().__init__(f"the server refused the batch: {description} (error {err_code})")
        self.err_code = err_code
        self.description = description


def _batch_limit(description: str, tried: int) -> int:
    """The batch size to try after `tried` messages were too many: the limit the server
    named ("... too large: 1000"), else half."""
    found = re.search(r"(\d+)\s*$", description)
    limit = int(found.group(1)) if found else tried // 2
    return max(1, min(limit, tried - 1))


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
        self.batch_messages = BATCH_MESSAGES  # lowered when the server's limit is lower
        self.batches = 0  # atomic batches the server stored (a lone message counts as one)
        self.fallbacks = 0  # batches refused as duplicates, then published one by one
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
        from nats.js.errors import APIError, NotFoundError

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
                allow_atomic=True,
            )
            self._check_atomic(await js.add_stream(config))
            return
        subjects = list(info.config.subjects or [])
        if want not in subjects:
            raise InvalidInput(
                f"the JetStream stream {self.stream} on {self.where} holds the subjects "
                f"{subjects}, not {want}: give the broker another stream name, or the subject "
                "prefix that stream was made for"
            )
        if not info.config.allow_atomic:  # made before atomic batches, or by someone else
            info.config.allow_atomic = True
            try:
                info = await js.update_stream(info.config)
            except APIError as error:
                raise InvalidInput(
                    f"the JetStream stream {self.stream} on {self.where} does not allow atomic "
                    f"batch publishes, and turning them on was refused ({error.description}): "
                    "set allow_atomic on it, or give the broker another stream name"
                ) from None
            self._check_atomic(info)

    def _check_atomic(self, info: Any) -> None:
        if not info.config.allow_atomic:
            raise InvalidInput(
                f"the NATS server at {self.where} does not keep allow_atomic on the JetStream "
                f"stream {self.stream}: the outbox publishes atomic batches, which need "
                "nats-server 2.12 or later"
            )

    # -- publishing ------------------------------------------------------------------------

    def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        batches = -(-len(messages) // self.batch_messages)
        with self._lock:  # each batch: its commit, then maybe the fallback's acks
            self._call(self._publish(messages), 2 * batches * self.ack_seconds + CONNECT_SECONDS)

    async def _publish(self, messages: Sequence[Message]) -> None:
        """Publish in atomic batches of at most `batch_messages`, in order; see the module
        docstring for the duplicate fallback."""
        await self._connected()
        start = 0
        enabled = False  # whether allow_atomic was turned on again in this call
        while start < len(messages):
            batch = messages[start : start + self.batch_messages]
            try:
                await self._publish_batch(batch)
            except BatchRefused as refused:
                if refused.err_code == ERR_BATCH_DUPLICATE:
                    self.fallbacks += 1
                    await self._publish_each(batch)
                elif refused.err_code == ERR_BATCH_TOO_LARGE and len(batch) > 1:
                    self.batch_messages = _batch_limit(refused.description, len(batch))
                    continue
                elif refused.err_code == ERR_ATOMIC_DISABLED and not enabled:
                    enabled = True  # the stream's configuration was changed under us
                    await self._ensure_stream()
                    continue
                else:
                    raise
            start += len(batch)

    async def _publish_batch(self, batch: Sequence[Message]) -> None:
        """One atomic batch: stored whole, or refused whole (BatchRefused)."""
        if len(batch) == 1:  # a lone message needs no batch (and dedupes without a refusal)
            await self._publish_each(batch)
            self.batches += 1
            return
        nc = self._nc
        batch_id = uuid.uuid4().hex  # a new id for every attempt
        last = len(batch)
        for n, m in enumerate(batch, 1):
            headers = {
                **m.headers,
                "Nats-Expected-Stream": self.stream,
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(n),
            }
            if n < last:
                await nc.publish(m.subject, m.data, headers=headers)
            else:
                headers["Nats-Batch-Commit"] = "1"
                answer = await self._commit(m.subject, m.data, headers)
        error = answer.get("error")
        if error:
            raise BatchRefused(error.get("err_code", 0), error.get("description", ""))
        if answer.get("count") != last:
            raise StoreUnavailable(
                self.where, f"the batch of {last} was acknowledged with {answer!r}"
            )
        self.batches += 1

    async def _commit(self, subject: str, data: bytes, headers: dict[str, str]) -> Any:
        """The last message of a batch, as a request; the server's answer as JSON."""
        nc = self._nc
        msg = await self._answered(nc, nc.request(subject, data, timeout=60, headers=headers))
        if msg.headers and msg.headers.get("Status") == "503":
            raise StoreUnavailable(self.where, "no responders: the stream is not available")
        return json.loads(msg.data)

    async def _publish_each(self, messages: Sequence[Message]) -> None:
        """Message by message on one connection, the acknowledgements awaited together; a
        message whose id the server stored within its duplicate window is dropped."""
        js = self._js
        futures = []
        for m in messages:
            futures.append(
                await js.publish_async(
                    m.subject, m.data, headers=dict(m.headers), stream=self.stream
                )
            )
        await self._answered(self._nc, asyncio.gather(*futures))

    async def _answered(self, nc: Any, waiting: Awaitable[T]) -> T:
        """What `waiting` gives, within `ack_seconds`; StoreUnavailable as soon as the
        connection closes (nats-py leaves a request in flight waiting for its timeout)."""
        task = asyncio.ensure_future(waiting)
        deadline = asyncio.get_running_loop().time() + self.ack_seconds
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                done, _ = await asyncio.wait({task}, timeout=min(max(left, 0), LIVENESS_SECONDS))
                if done:
                    return task.result()
                if not nc.is_connected or left <= 0:
                    await self._drop()  # the next call starts on a fresh connection
                    if left <= 0:
                        why = f"no acknowledgement within {self.ack_seconds:g} s"
                        raise StoreUnavailable(self.where, why)
                    raise StoreUnavailable(self.where, "the connection was lost")
        finally:
            task.cancel()

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
        except (nats.errors.TimeoutError, TimeoutError):
            # nothing came in time; nats-py raises its own or asyncio's, depending on where
            # the wait ran out (a batch fetch that got part of its messages raises asyncio's)
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


__all__ = ["DEFAULT_STREAM", "BatchRefused", "NatsBroker", "NatsConsumer"]
