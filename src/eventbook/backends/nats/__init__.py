"""The NATS JetStream store: `nats://HOST:PORT` (see store.py and docs/nats.md)."""
