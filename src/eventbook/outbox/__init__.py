"""Reliable publishing: a relay from any store's global log to a broker, at least once, and a
consumer helper that applies each event's effect exactly once, in order per stream.

    from eventbook.outbox import Consumer, MemoryBroker, NatsBroker, Relay

    broker = NatsBroker("nats://127.0.0.1:4222")       # or MemoryBroker() in one process
    relay = Relay(store, broker, "relay.checkpoint").start()
    consumer = Consumer(broker, "billing", handler, "billing.sqlite", categories=["order"])
    consumer.start()

See docs/outbox.md.
"""

from eventbook.outbox.broker import (
    DEFAULT_PREFIX,
    Broker,
    BrokerConsumer,
    Delivery,
    MemoryBroker,
    Message,
    category_of,
    decode_event,
    decode_token,
    encode_event,
    encode_token,
    message_for,
    subject_for,
    subjects_for,
)
from eventbook.outbox.consumer import Consumer, ConsumerStopped, Handler, partition_of
from eventbook.outbox.nats_broker import NatsBroker
from eventbook.outbox.relay import (
    Checkpoint,
    FileCheckpoint,
    MemoryCheckpoint,
    Relay,
    RelayStatus,
)

__all__ = [
    "DEFAULT_PREFIX",
    "Broker",
    "BrokerConsumer",
    "Checkpoint",
    "Consumer",
    "ConsumerStopped",
    "Delivery",
    "FileCheckpoint",
    "Handler",
    "MemoryBroker",
    "MemoryCheckpoint",
    "Message",
    "NatsBroker",
    "Relay",
    "RelayStatus",
    "category_of",
    "decode_event",
    "decode_token",
    "encode_event",
    "encode_token",
    "message_for",
    "partition_of",
    "subject_for",
    "subjects_for",
]
