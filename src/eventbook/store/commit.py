"""Turning an append call into a checked commit, the same way for every backend.

`prepare_commit` validates everything a caller gave (before any byte is written) and
computes the content digest that makes commit ids idempotent. `plan_commit` checks the
expected versions against the store's current versions and assigns positions, versions,
event ids and the recorded time.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from eventbook import limits
from eventbook.core.messages import AppendResult, NewEvent, RecordedEvent
from eventbook.core.validation import (
    check_aware,
    check_id_text,
    check_json_object,
    check_stream_id,
    check_type_name,
)
from eventbook.errors import InvalidInput
from eventbook.store.expected import Expected, check_expected, parse_expected

_encoder = msgspec.msgpack.Encoder(order="sorted")


class _EventIds:
    """Event ids: UUID-shaped (version 8): 60 random bits drawn per process, then a counter.

    Unique without a syscall per id; the prefix is drawn again in a forked child."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        h = f"{int.from_bytes(os.urandom(8), 'big'):016x}"
        self.prefix = f"{h[:8]}-{h[8:12]}-8{h[13:16]}-"
        self.counter = itertools.count(int.from_bytes(os.urandom(6), "big"))

    def next(self) -> str:
        n = next(self.counter)
        return f"{self.prefix}{(n >> 48) & 0x3FFF | 0x8000:04x}-{n & 0xFFFFFFFFFFFF:012x}"


_event_ids = _EventIds()
os.register_at_fork(after_in_child=_event_ids.reseed)
new_event_id = _event_ids.next


@dataclass(frozen=True, slots=True)
class PreparedCommit:
    events: tuple[NewEvent, ...]
    expected: dict[str, Expected]
    commit_id: str | None
    metadata: dict[str, Any]
    digest: bytes  # content digest; empty when there is no commit id


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """What a store remembers of a commit with an id, to answer a retry."""

    commit_id: str
    digest: bytes
    first_position: int
    last_position: int


def prepare_commit(
    events: Iterable[NewEvent],
    expected: Mapping[str, object] | None,
    commit_id: str | None,
    metadata: Mapping[str, Any] | None,
) -> PreparedCommit:
    if isinstance(events, NewEvent):
        raise InvalidInput("append takes a list of NewEvent, got a single NewEvent; wrap it in [ ]")
    if isinstance(events, str | bytes | Mapping) or not isinstance(events, Iterable):
        raise InvalidInput(f"append takes a list of NewEvent, got {type(events).__name__}")
    batch = tuple(events)
    if not batch:
        raise InvalidInput("a commit needs at least one event; got an empty list")
    if len(batch) > limits.append_batch_count_max:
        raise InvalidInput(
            f"a commit holds at most {limits.append_batch_count_max} events; got {len(batch)}"
        )
    total = 0
    for i, event in enumerate(batch):
        total += _check_event(event, i)
    if total > limits.commit_bytes_max:
        raise InvalidInput(
            f"the commit's events encode to {total} bytes; at most {limits.commit_bytes_max}"
        )
    plan = _check_expected_map(expected)
    if commit_id is not None:
        check_id_text(commit_id, what="commit id", chars_max=limits.commit_id_chars_max)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidInput(
            f"commit metadata must be a JSON object (a dict), got {type(metadata).__name__}"
        )
    meta = dict(metadata) if metadata is not None else {}
    if meta:
        check_json_object(meta, what="commit metadata")
        if len(_encoder.encode(meta)) > limits.commit_metadata_bytes_max:
            raise InvalidInput(
                f"commit metadata encodes to more than {limits.commit_metadata_bytes_max} bytes"
            )
    digest = _digest(batch, meta) if commit_id is not None else b""
    return PreparedCommit(batch, plan, commit_id, meta, digest)


_checked_names: set[tuple[str, str]] = set()  # (stream, type) pairs already found valid


def _check_event(event: object, index: int) -> int:
    try:
        return _check_one(event)
    except InvalidInput as exc:
        raise InvalidInput(f"event {index}: {exc.message}") from None


def _check_one(event: object) -> int:
    if not isinstance(event, NewEvent):
        raise InvalidInput(f"must be an eventbook.NewEvent, got {type(event).__name__}")
    names = (event.stream, event.type)
    if (
        type(event.stream) is not str
        or type(event.type) is not str
        or (names not in _checked_names)
    ):
        check_stream_id(event.stream)
        check_type_name(event.type)
        if len(_checked_names) >= 4096:
            _checked_names.clear()
        _checked_names.add(names)
    check_json_object(event.data, what=f"{event.type} data")
    if event.metadata:
        check_json_object(event.metadata, what=f"{event.type} metadata")
        if len(_encoder.encode(event.metadata)) > limits.event_metadata_bytes_max:
            raise InvalidInput(
                f"metadata encodes to more than {limits.event_metadata_bytes_max} bytes"
            )
    elif not isinstance(event.metadata, dict):
        raise InvalidInput(f"metadata must be a JSON object (a dict), got {event.metadata!r}")
    if event.occurred_at is not None:
        check_aware(event.occurred_at, what="occurred_at")
    if event.id is not None:
        check_id_text(event.id, what="event id", chars_max=limits.event_id_chars_max)
    sv = event.schema_version
    if type(sv) is not int or not 1 <= sv <= limits.schema_version_max:
        raise InvalidInput(f"schema_version must be an integer 1..{limits.schema_version_max}")
    data_bytes = len(_encoder.encode(event.data))
    if data_bytes > limits.event_data_bytes_max:
        raise InvalidInput(
            f"{event.type} data encodes to {data_bytes} bytes; at most "
            f"{limits.event_data_bytes_max} (limits.event_data_bytes_max)"
        )
    return data_bytes


def _check_expected_map(expected: Mapping[str, object] | None) -> dict[str, Expected]:
    if expected is None:
        return {}
    if not isinstance(expected, Mapping):
        raise InvalidInput(
            "expected must be a mapping of stream id to expected version, "
            f"got {type(expected).__name__}"
        )
    if len(expected) > limits.expected_streams_count_max:
        raise InvalidInput(f"expected names at most {limits.expected_streams_count_max} streams")
    plan: dict[str, Expected] = {}
    for stream, value in expected.items():
        check_stream_id(stream, where="expected: stream id")
        plan[stream] = parse_expected(value, stream=stream)
    return plan


def _digest(batch: tuple[NewEvent, ...], metadata: dict[str, Any]) -> bytes:
    body = [
        [e.stream, e.type, e.data, e.metadata, e.occurred_at, e.id, e.schema_version] for e in batch
    ]
    return hashlib.blake2b(_encoder.encode([body, metadata]), digest_size=16).digest()


def plan_commit(
    prepared: PreparedCommit,
    version_of: Callable[[str], int],
    next_position: int,
    now: datetime,
) -> tuple[list[RecordedEvent], AppendResult]:
    """Check expected versions and lay out the commit's records. Raises, writes nothing."""
    versions: dict[str, int] = {}
    for stream, want in prepared.expected.items():
        actual = version_of(stream)
        check_expected(stream, want, actual)
        versions[stream] = actual
    records: list[RecordedEvent] = []
    written: dict[str, int] = {}
    position = next_position
    commit_id = prepared.commit_id
    for event in prepared.events:
        stream = event.stream
        version = versions[stream] if stream in versions else version_of(stream)
        version += 1
        versions[stream] = version
        written[stream] = version
        records.append(
            RecordedEvent(
                position,
                stream,
                version,
                event.type,
                event.data,
                event.metadata,
                now,
                event.occurred_at.astimezone(UTC) if event.occurred_at else now,
                event.id or new_event_id(),
                event.schema_version,
                commit_id,
            )
        )
        position += 1
    result = AppendResult(next_position, position - 1, written, commit_id, now)
    return records, result


def result_of(records: list[RecordedEvent]) -> AppendResult:
    """Rebuild the AppendResult of a recorded commit (to answer an idempotent retry)."""
    versions: dict[str, int] = {}
    for r in records:
        versions[r.stream] = r.version
    first = records[0]
    return AppendResult(
        first.position, records[-1].position, versions, first.commit_id, first.recorded_at
    )
