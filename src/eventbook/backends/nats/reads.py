"""The reading half of the NATS store: the global log, streams, commits and the head, by
direct gets (batched where the server allows), decoded into RecordedEvents.

A commit's recorded time is the server's timestamp of its first message (or the time a store
clock gave it); messages after the first find it in a small cache or read it once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg

from eventbook import limits
from eventbook.backends.nats import subjects
from eventbook.backends.nats.connection import (
    api,
    direct_batch,
    direct_get,
    leader_get,
    parse_time,
)
from eventbook.backends.nats.payload import Payload, decode_payload
from eventbook.core.messages import RecordedEvent
from eventbook.core.validation import check_id_text
from eventbook.errors import StoreUnavailable
from eventbook.store.contract import StreamInfo, check_limit, check_position
from eventbook.store.reading import page_stream

CATCH_UP_SECONDS = 1.0  # how long a read waits for a replica behind this store's own appends
SCAN_VERSIONS_MAX = 256  # a stream read from version v > this finds v by bisection
VERSION_HINTS_MAX = 100_000  # (stream, version) -> sequence hints a store remembers


class NatsReads:
    """Reads of NatsStore (a mixin: the store gives the client, the stream name, the caches)."""

    name: str
    target: Any
    _nc: Any
    _acked: int
    _versions: dict[str, tuple[int, int]]
    _hints: dict[tuple[str, int], int]
    _times: dict[int, datetime]

    # and, from NatsStore and EventStore: _call(coroutine) and _check_open()
    _call: Any
    _check_open: Any

    async def _last_of(self, stream: str) -> tuple[int, int]:
        """A stream's version and last sequence, from the leader: an append builds on it."""
        msg = await leader_get(
            self._nc, self.name, {"last_by_subj": subjects.stream_filter(self.name, stream)}
        )
        if msg is None:
            return 0, 0
        return decode_payload(msg.data).version, int(msg.headers["Nats-Sequence"])

    async def _commit_at(self, msg: Any) -> list[RecordedEvent]:
        """The whole commit of a message (read from the leader when a replica is behind)."""
        stored = decode_payload(msg.data)
        first = int(msg.headers["Nats-Sequence"]) - stored.offset
        events = await self._range(first - 1, first + stored.size - 1)
        if len(events) < stored.size:
            found = [
                await leader_get(self._nc, self.name, {"seq": seq})
                for seq in range(first, first + stored.size)
            ]
            events = await self._events([m for m in found if m is not None])
        return events

    def read_all(self, *, after: int = 0, limit: int | None = None) -> Iterator[RecordedEvent]:
        self._check_open()
        check_position(after)
        limit = check_limit(limit)
        return self._read_all(after, self.head_position(), limit)

    def _read_all(self, after: int, head: int, limit: int | None) -> Iterator[RecordedEvent]:
        remaining = limit
        while after < head and (remaining is None or remaining > 0):
            page = limits.read_page_count_max if remaining is None else remaining
            upto = min(head, after + min(page, limits.read_page_count_max))
            rows = self._call(self._range(after, upto))
            if not rows:  # positions have no gap: a replica behind the head answered
                rows = self._call(self._range_again(after, upto))
            yield from rows
            after = rows[-1].position
            if remaining is not None:
                remaining -= len(rows)

    async def _range(self, after: int, upto: int) -> list[RecordedEvent]:
        """The events at positions after..upto, whole commits only."""
        msgs = await direct_batch(self._nc, self.name, {"seq": after + 1, "batch": upto - after})
        return await self._events(msgs)

    async def _range_again(self, after: int, upto: int) -> list[RecordedEvent]:
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(0.002)
            rows = await self._range(after, upto)
            if rows:
                return rows
        raise StoreUnavailable(
            self.target.where, f"positions {after + 1}..{upto} are below the head but unreadable"
        )

    async def _events(self, msgs: list[Msg]) -> list[RecordedEvent]:
        out: list[RecordedEvent] = []
        times = self._times
        pending: list[tuple[Msg, Payload, int]] = []
        for msg in msgs:
            stored = decode_payload(msg.data)
            seq = int(msg.headers["Nats-Sequence"])
            if stored.offset == 0:
                times[seq] = stored.recorded_at or parse_time(msg.headers["Nats-Time-Stamp"])
            pending.append((msg, stored, seq))
        for msg, stored, seq in pending:
            first = seq - stored.offset
            recorded = times.get(first)
            if recorded is None:
                head = await direct_get(self._nc, self.name, {"seq": first})
                recorded = decode_payload(head.data).recorded_at or parse_time(
                    head.headers["Nats-Time-Stamp"]
                )
                times[first] = recorded
            out.append(
                RecordedEvent(
                    seq,
                    subjects.stream_of_subject(msg.headers["Nats-Subject"]),
                    stored.version,
                    stored.type,
                    stored.data,
                    stored.metadata,
                    recorded,
                    stored.occurred_at or recorded,
                    stored.id,
                    stored.schema_version,
                    stored.commit_id,
                )
            )
        if len(times) > limits.read_page_count_max * 4:
            times.clear()
        return out

    def read_stream(
        self,
        stream: str,
        *,
        from_version: int | None = None,
        backward: bool = False,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        self._check_open()
        version = self.stream_version(stream) if isinstance(stream, str) else 0
        return page_stream(
            stream,
            version,
            lambda lo, hi: self._call(self._versions_range(stream, lo, hi)),
            from_version,
            backward,
            limit,
        )

    async def _versions_range(self, stream: str, lo: int, hi: int) -> list[RecordedEvent]:
        start = await self._seq_at_or_before(stream, lo)
        filter_ = subjects.stream_filter(self.name, stream)
        out: list[RecordedEvent] = []
        while True:
            want = hi - lo + 1
            msgs = await direct_batch(
                self._nc,
                self.name,
                {"seq": start, "next_by_subj": filter_, "batch": want + SCAN_VERSIONS_MAX},
            )
            events = await self._events(msgs)
            out.extend(e for e in events if lo <= e.version <= hi)
            if not events or events[-1].version >= hi:
                break
            start = events[-1].position + 1
        out = out[: hi - lo + 1]
        if out:
            self._hints[(stream, hi + 1)] = out[-1].position + 1
            if len(self._hints) > VERSION_HINTS_MAX:
                self._hints.clear()
        return out

    async def _seq_at_or_before(self, stream: str, version: int) -> int:
        """A sequence from which a forward scan of the stream meets `version` soon."""
        hint = self._hints.get((stream, version))
        if hint is not None or version <= SCAN_VERSIONS_MAX:
            return hint or 1
        filter_ = subjects.stream_filter(self.name, stream)
        low, high = 1, (await self._last_of(stream))[1]
        while low < high:  # the first sequence whose next event of the stream has >= version
            mid = (low + high) // 2
            msg = await direct_get(self._nc, self.name, {"seq": mid, "next_by_subj": filter_})
            if msg is None:
                high = mid
                continue
            seq, found = int(msg.headers["Nats-Sequence"]), decode_payload(msg.data).version
            if found == version:
                return seq
            if found < version:
                low = seq + 1
            else:
                high = mid
        return low

    def read_commit(self, commit_id: str) -> list[RecordedEvent]:
        self._check_open()
        check_id_text(commit_id, what="commit id", chars_max=limits.commit_id_chars_max)
        return self._call(self._read_commit(commit_id))

    async def _read_commit(self, commit_id: str) -> list[RecordedEvent]:
        msg = await direct_get(
            self._nc, self.name, {"last_by_subj": subjects.commit_filter(self.name, commit_id)}
        )
        return [] if msg is None else await self._commit_at(msg)

    def stream_version(self, stream: str) -> int:
        self._check_open()
        if not isinstance(stream, str) or not stream:
            return 0
        return self._call(self._stream_version(stream))

    async def _stream_version(self, stream: str) -> int:
        self._versions[stream] = state = await self._last_of(stream)
        return state[0]

    def head_position(self) -> int:
        return self._call(self._head())

    async def _head(self) -> int:
        # In a cluster any current replica may answer a direct get; one that has not applied
        # this store object's last acknowledged append yet is asked again (read your writes).
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while True:
            head = await self._last_whole_position()
            if head >= self._acked or time.monotonic() > deadline:
                return head
            await asyncio.sleep(0.002)

    async def _last_whole_position(self) -> int:
        msg = await direct_get(self._nc, self.name, {"last_by_subj": f"{self.name}.>"})
        if msg is None:
            return 0
        stored = decode_payload(msg.data)
        seq = int(msg.headers["Nats-Sequence"])
        return seq if stored.offset + 1 == stored.size else seq - stored.offset - 1

    def streams(self) -> Iterator[StreamInfo]:
        self._check_open()
        return iter(self._call(self._streams()))

    async def _streams(self) -> list[StreamInfo]:
        tokens: set[str] = set()
        offset = 0
        while True:
            info = await api(
                self._nc,
                f"$JS.API.STREAM.INFO.{self.name}",
                {"subjects_filter": f"{self.name}.>", "offset": offset},
            )
            found = info["state"].get("subjects") or {}
            tokens.update(subject.split(".", 2)[1] for subject in found)
            offset += len(found)
            if not found or offset >= info.get("total", 0):
                break
        out = []
        for stream in sorted(subjects.decode_token(t) for t in tokens):
            version, seq = await self._last_of(stream)
            if version:
                out.append(StreamInfo(stream, version, seq))
        return out
