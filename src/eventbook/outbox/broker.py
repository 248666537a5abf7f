"""What the outbox publishes to: the Broker protocol, the message shape, the subject mapping,
and MemoryBroker, the in-process reference implementation.

A message is one recorded event: its subject is `<prefix>.<category>` (the category is the
part of the stream id before the first '-', escaped to one valid NATS subject token), its id
is the event id (`Nats-Msg-Id`: the broker drops a message whose id it stored within its
duplicate window), its payload the event as a JSON object, its headers the event id,
position, stream, version and type.

A broker offers two sides:

    broker.publish(messages)                # returns once every one is stored, or raises
    consumer = broker.consumer(name, subjects)   # a durable consumer, rewound to its ack floor
    consumer.fetch(count, timeout) -> [Delivery, ...];  consumer.ack(delivery)

Opening a durable consumer rewinds it to its ack floor (everything after the last message
acknowledged without a gap is delivered again, in broker order), so that a restarted
consumer never sees a later message before an earlier one it had fetched but not acknowledged.
One process at a time uses a durable consumer name.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import msgspec

from eventbook.core.messages import RecordedEvent
from eventbook.errors import InvalidInput, StoreUnavailable

DEFAULT_PREFIX = "outbox"
DUPLICATE_WINDOW_SECONDS = 120.0  # NATS JetStream's default duplicate window
HEADER_ID = "Nats-Msg-Id"
HEADER_POSITION = "Eventbook-Position"
HEADER_STREAM = "Eventbook-Stream"  # percent-encoded UTF-8 (RFC 3986)
HEADER_VERSION = "Eventbook-Version"
HEADER_TYPE = "Eventbook-Type"

_TOKEN_SAFE = re.compile(r"[A-Za-z0-9_-]")
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z")
_ESCAPED = re.compile(r"~([0-9A-F]{2})")
EMPTY_TOKEN = "~"  # the escaped form of an empty category (a stream id starting with '-')


# -- subjects ------------------------------------------------------------------------------------


def category_of(stream: str) -> str:
    """The category of a stream id: the part before the first '-' (all of it if none)."""
    return stream.split("-", 1)[0]


def encode_token(text: str) -> str:
    """`text` as one NATS subject token: letters, digits, '_' and '-' are kept; every other
    UTF-8 byte is written `~XX` (upper-case hex). Reversible by `decode_token`."""
    if not text:
        return EMPTY_TOKEN
    out = []
    for char in text:
        if _TOKEN_SAFE.match(char):
            out.append(char)
        else:
            out.extend(f"~{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def decode_token(token: str) -> str:
    if token == EMPTY_TOKEN:
        return ""
    raw = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "~":
            if not _ESCAPED.match(token, i):
                raise InvalidInput(
                    f"subject token {token!r} has a '~' not followed by 2 hex digits"
                )
            raw.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(token[i].encode("ascii"))
            i += 1
    return raw.decode("utf-8")


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise InvalidInput(
            f"subject prefix {prefix!r} is not allowed: use one or more tokens of letters, "
            "digits, '_' or '-', separated by '.' (e.g. 'outbox' or 'bank.events')"
        )
    return prefix


def subject_for(prefix: str, stream: str) -> str:
    """The subject the events of `stream` are published to: `<prefix>.<category>`."""
    return f"{prefix}.{encode_token(category_of(stream))}"


def subjects_for(prefix: str, categories: Sequence[str] | None) -> list[str]:
    """The subject filters of a consumer: one per category, or all of the prefix (None)."""
    if categories is None:
        return [f"{prefix}.>"]
    if isinstance(categories, str) or not categories:
        raise InvalidInput(
            f"categories must be None (all) or a non-empty list of categories, got {categories!r}"
        )
    return sorted({f"{prefix}.{encode_token(c)}" for c in categories})


def matches(subject: str, filters: Sequence[str]) -> bool:
    """Whether a subject matches one of the filters (exact, or `P.>` for all under P)."""
    return any((f.endswith(".>") and subject.startswith(f[:-1])) or subject == f for f in filters)


# -- messages -------------------------------------------------------------------------------------


class _Wire(msgspec.Struct, frozen=True):
    """The payload: a recorded event as a JSON object (field names as in RecordedEvent)."""

    position: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime
    occurred_at: datetime
    id: str
    schema_version: int
    commit_id: str | None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Wire)


def encode_event(event: RecordedEvent) -> bytes:
    return _encoder.encode(_Wire(*msgspec.structs.astuple(event)))


def decode_event(payload: bytes) -> RecordedEvent:
    try:
        wire = _decoder.decode(payload)
    except msgspec.DecodeError as error:
        raise InvalidInput(f"a broker message is not an eventbook event: {error}") from None
    return RecordedEvent(*msgspec.structs.astuple(wire))


@dataclass(frozen=True)
class Message:
    """One message to publish."""

    subject: str
    id: str
    data: bytes
    headers: dict[str, str]


def message_for(prefix: str, event: RecordedEvent) -> Message:
    headers = {
        HEADER_ID: event.id,
        HEADER_POSITION: str(event.position),
        HEADER_STREAM: quote(event.stream, safe=""),
        HEADER_VERSION: str(event.version),
        HEADER_TYPE: event.type,
    }
    return Message(subject_for(prefix, event.stream), event.id, encode_event(event), headers)


@dataclass(frozen=True)
class Delivery:
    """One message as a consumer received it. `sequence` is the broker's own order."""

    event: RecordedEvent
    subject: str
    sequence: int
    deliveries: int  # 1 on first delivery
    handle: Any = field(default=None, repr=False, compare=False)  # the broker's, for ack


# -- the protocol ---------------------------------------------------------------------------------


class BrokerConsumer(Protocol):
    name: str

    def fetch(self, count: int, timeout: float) -> list[Delivery]:
        """Up to `count` messages, waiting at most `timeout` seconds for the first."""

    def ack(self, delivery: Delivery) -> None:
        """The message was processed: the broker will not deliver it again."""

    def close(self) -> None: ...


class Broker(Protocol):
    subject_prefix: str

    def publish(self, messages: Sequence[Message]) -> None:
        """Publish `messages` in order and return once the broker stored every one (a message
        whose id it has stored within its duplicate window counts as stored). Raises
        StoreUnavailable otherwise: then any prefix of them may be stored."""

    def consumer(self, name: str, subjects: Sequence[str]) -> BrokerConsumer:
        """The durable consumer `name` over `subjects`, rewound to its ack floor."""

    def close(self) -> None: ...


# -- the in-process broker ------------------------------------------------------------------------


class _ConsumerState:
    def __init__(self, subjects: Sequence[str]) -> None:
        self.subjects = list(subjects)
        self.ack_floor = 0  # every matching message at or below it is acknowledged
        self.acked: set[int] = set()  # acknowledged above the floor
        self.next = 1  # the next sequence to look at
        self.delivered: dict[int, int] = {}  # sequence -> times delivered


class MemoryBroker:
    """A broker in this process's memory, with the semantics the outbox relies on from NATS
    JetStream: messages in publish order, duplicates by message id dropped within a window,
    durable consumers with explicit acks that open rewound to their ack floor.

    For tests: `fail_next_publish(stored)` makes the next publish store only its first
    `stored` messages and then raise StoreUnavailable, as a broker that went away would."""

    def __init__(
        self,
        *,
        subject_prefix: str = DEFAULT_PREFIX,
        duplicate_window: float = DUPLICATE_WINDOW_SECONDS,
    ) -> None:
        self.subject_prefix = check_prefix(subject_prefix)
        self.duplicate_window = duplicate_window
        self.messages: list[Message] = []  # sequence n is messages[n - 1]
        self._ids: dict[str, float] = {}  # message id -> when stored
        self._id_order: deque[tuple[float, str]] = deque()
        self._consumers: dict[str, _ConsumerState] = {}
        self._changed = threading.Condition()
        self._fail_after: int | None = None
        self.publish_calls = 0
        self.duplicates = 0
        self.closed = False

    def fail_next_publish(self, stored: int = 0) -> None:
        self._fail_after = stored

    def publish(self, messages: Sequence[Message]) -> None:
        with self._changed:
            self._check_open()
            self.publish_calls += 1
            fail_after, self._fail_after = self._fail_after, None
            now = time.monotonic()
            self._forget_before(now - self.duplicate_window)
            for n, message in enumerate(messages):
                if fail_after is not None and n >= fail_after:
                    raise StoreUnavailable("the memory broker", "publish failed (injected)")
                if message.id in self._ids:
                    self.duplicates += 1
                    continue
                self._ids[message.id] = now
                self._id_order.append((now, message.id))
                self.messages.append(message)
            self._changed.notify_all()
            if fail_after is not None and fail_after >= len(messages):
                raise StoreUnavailable("the memory broker", "acknowledgement lost (injected)")

    def _forget_before(self, cutoff: float) -> None:
        while self._id_order and self._id_order[0][0] < cutoff:
            _, old = self._id_order.popleft()
            self._ids.pop(old, None)

    def consumer(self, name: str, subjects: Sequence[str]) -> MemoryConsumer:
        with self._changed:
            self._check_open()
            state = self._consumers.get(name)
            if state is None or state.subjects != list(subjects):
                floor = state.ack_floor if state else 0
                state = self._consumers[name] = _ConsumerState(subjects)
                state.ack_floor = floor
            state.next = state.ack_floor + 1  # rewind: everything unacknowledged comes again
            state.acked = {s for s in state.acked if s > state.ack_floor}
            return MemoryConsumer(self, name, state)

    def _fetch(self, state: _ConsumerState, count: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                self._check_open()
                found = []
                while state.next <= len(self.messages) and len(found) < count:
                    seq = state.next
                    state.next += 1
                    message = self.messages[seq - 1]
                    if seq in state.acked or not matches(message.subject, state.subjects):
                        continue
                    state.delivered[seq] = state.delivered.get(seq, 0) + 1
                    found.append(
                        Delivery(
                            decode_event(message.data),
                            message.subject,
                            seq,
                            state.delivered[seq],
                            seq,
                        )
                    )
                left = deadline - time.monotonic()
                if found or left <= 0:
                    return found
                self._changed.wait(left)

    def _ack(self, state: _ConsumerState, sequence: int) -> None:
        with self._changed:
            if sequence <= state.ack_floor:
                return
            state.acked.add(sequence)
            while state.ack_floor < len(self.messages):
                nxt = state.ack_floor + 1
                if nxt in state.acked:
                    state.acked.discard(nxt)
                elif matches(self.messages[nxt - 1].subject, state.subjects):
                    break
                state.ack_floor = nxt
                state.delivered.pop(nxt, None)

    def _check_open(self) -> None:
        if self.closed:
            raise StoreUnavailable("the memory broker", "it was closed")

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()


class MemoryConsumer:
    def __init__(self, broker: MemoryBroker, name: str, state: _ConsumerState) -> None:
        self.broker = broker
        self.name = name
        self._state = state

    def fetch(self, count: int, timeout: float) -> list[Delivery]:
        return self.broker._fetch(self._state, count, timeout)

    def ack(self, delivery: Delivery) -> None:
        self.broker._ack(self._state, delivery.handle)

    @property
    def ack_floor(self) -> int:
        return self._state.ack_floor

    def close(self) -> None:
        pass


__all__ = [
    "DEFAULT_PREFIX",
    "Broker",
    "BrokerConsumer",
    "Delivery",
    "MemoryBroker",
    "MemoryConsumer",
    "Message",
    "category_of",
    "decode_event",
    "decode_token",
    "encode_event",
    "encode_token",
    "message_for",
    "subject_for",
    "subjects_for",
]
