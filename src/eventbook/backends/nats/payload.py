"""An event as a NATS message payload: MessagePack of `Payload`, an array-like Struct whose
field order is therefore the stored format (fields may only be added at the end)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Payload(msgspec.Struct, array_like=True):
    """One event as a message payload. The first event of a commit carries the commit's
    nonce, content digest (with a commit id) and metadata."""

    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    occurred_at: datetime | None
    id: str
    schema_version: int
    version: int
    commit_id: str | None
    offset: int  # this event's place in its commit, from 0
    size: int  # the number of events in the commit
    nonce: str | None = None
    digest: bytes | None = None
    commit_metadata: dict[str, Any] | None = None
    recorded_at: datetime | None = None  # with a store clock (tests): the commit's time


encode_payload = msgspec.msgpack.Encoder().encode
decode_payload = msgspec.msgpack.Decoder(Payload).decode

__all__ = ["Payload", "decode_payload", "encode_payload"]
