"""The NATS JetStream store: `nats://HOST:PORT[,nats://HOST2:PORT2][?stream=NAME&replicas=N]`.

Every event is one message of one JetStream stream (default EVENTBOOK), whose sequence is the
event's global position. A message's subject is `NAME.<stream id>.<commit id or _>` (ids
encoded as subject tokens, subjects.py), its payload the event in MessagePack (`_Stored`).

An append is one publish: a lone message, or an atomic batch (all of the commit's messages or
none) when the commit has several events. The first message of each stream in the commit
carries `Nats-Expected-Last-Subject-Sequence` for the subject filter `NAME.<stream>.*`: the
server refuses the whole publish if another writer appended to the stream since we read its
version, so versions are assigned without a lock. Every publish carries a `Nats-Msg-Id` (the
commit id, or a fresh nonce) so the retry of a publish whose acknowledgement was lost is
dropped by the server; a commit id is also looked up before publishing, by the literal
subject `NAME.<stream>.<commit id>`, so idempotency holds beyond the duplicate window.
docs/nats.md has the mapping and the guarantees.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import msgspec
from nats.aio.msg import Msg

from eventbook import limits
from eventbook.backends.nats import subjects
from eventbook.backends.nats.connection import (
    UNREACHABLE,
    ApiError,
    Runtime,
    Target,
    api,
    api_answer,
    direct_get,
    leader_get,
    parse_url,
)
from eventbook.backends.nats.payload import Payload, decode_payload, encode_payload
from eventbook.backends.nats.reads import NatsReads
from eventbook.core.messages import AppendResult, NewEvent, RecordedEvent
from eventbook.errors import (
    DuplicateCommit,
    InvalidInput,
    StoreReadOnly,
    StoreUnavailable,
    WrongExpectedVersion,
)
from eventbook.store.commit import PreparedCommit, new_event_id, prepare_commit, result_of
from eventbook.store.contract import EventStore
from eventbook.store.expected import ANY, NO_STREAM, check_expected

PUBLISH_RETRY_SECONDS = 30.0  # how long an append retries a publish whose outcome is unknown
CREATE_ATTEMPTS = 3  # a stream the server failed to create (a 5xx) is asked for again
PUBLISH_ACK_SECONDS = 2.0  # one try's wait for its acknowledgement (a lost server: try again)
CONFLICT_RETRIES = 100  # a stream moved under an append with expected ANY: read, try again
VERSION_CACHE_MAX = 100_000  # streams whose version and last sequence a store remembers
DUPLICATE_WINDOW_NS = 120 * 10**9  # the server's Nats-Msg-Id window (2 minutes, its default)
ERR_WRONG_LAST_SEQUENCE = 10071
ERR_BATCH_DUPLICATE = 10201
ERR_STREAM_NOT_FOUND = 10059
ERR_BATCH_TOO_LARGE = 10199


def stream_config(target: Target) -> dict[str, Any]:
    """The JetStream stream an eventbook store needs (created when missing)."""
    return {
        "name": target.stream,
        "subjects": [f"{target.stream}.>"],
        "retention": "limits",
        "storage": "file",
        "num_replicas": target.replicas or 1,
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msgs_per_subject": -1,
        "discard": "old",
        "duplicate_window": DUPLICATE_WINDOW_NS,
        "allow_direct": True,
        "allow_atomic": True,
        "deny_delete": True,
        "deny_purge": True,
    }


_CHECKED = (  # configuration an existing stream must share with ours
    "subjects",
    "retention",
    "storage",
    "num_replicas",
    "max_msgs",
    "max_bytes",
    "max_age",
    "max_msgs_per_subject",
    "allow_direct",
    "allow_atomic",
    "deny_delete",
    "deny_purge",
)


def _result_of(events: list[RecordedEvent]) -> AppendResult:
    """The AppendResult of a stored commit, as an append returns it: without recorded_at,
    which the server stamps as it stores (the events read back carry it)."""
    return msgspec.structs.replace(result_of(events), recorded_at=None)


class NatsStore(NatsReads, EventStore):
    """An event store in a NATS JetStream stream. Open it with `eventbook.open_store(url)`."""

    def __init__(
        self,
        url: str,
        *,
        stream: str | None = None,
        replicas: int | None = None,
        readonly: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.url = url
        self._clock = clock  # None: the server stamps each message as it stores it
        self._clock_floor: datetime | None = None  # a store clock never goes back in the log
        self.target = parse_url(url, stream, replicas)
        self.name = self.target.stream
        self.readonly = readonly
        self._rt = Runtime(self.target)
        self._versions: dict[str, tuple[int, int]] = {}  # stream -> (version, last sequence)
        self._hints: dict[tuple[str, int], int] = {}  # (stream, version) -> a sequence at or before
        self._times: dict[int, datetime] = {}  # sequence of a commit's first event -> its time
        self._acked = 0  # the last position acknowledged to this store object
        self._wake = threading.Condition()
        self._generation = 0
        self._watching = False
        try:
            self._call(self._ensure_stream())
        except BaseException:
            self._rt.close()
            raise

    # -- running on the loop ----------------------------------------------------------------

    def _call(self, coro: Any, unknown_outcome: bool = False) -> Any:
        if self.closed:
            coro.close()
            self._check_open()
        try:
            return self._rt.run(coro)
        except ApiError as exc:
            raise StoreUnavailable(self.target.where, exc, unknown_outcome) from None
        except UNREACHABLE as exc:
            raise StoreUnavailable(self.target.where, exc, unknown_outcome) from None

    @property
    def _nc(self) -> Any:
        return self._rt.nc

    async def _ensure_stream(self) -> None:
        want = stream_config(self.target)
        try:
            info = await api(self._nc, f"$JS.API.STREAM.INFO.{self.name}")
        except ApiError as exc:
            if exc.err_code != ERR_STREAM_NOT_FOUND:
                raise
            if self.readonly:
                raise InvalidInput(
                    f"{self.target.where} has no JetStream stream {self.name!r} to read "
                    "(readonly=True does not create it)"
                ) from None
            await self._create_stream(want)
            return
        have = info["config"]
        # the server leaves out settings that are false
        have = {key: have.get(key, False if want[key] is True else None) for key in _CHECKED}
        wrong = [
            f"{key}={have[key]!r} (eventbook needs {want[key]!r})"
            for key in _CHECKED
            if have[key] != want[key]
            and (key != "num_replicas" or self.target.replicas is not None)
        ]
        if wrong:
            raise InvalidInput(
                f"JetStream stream {self.name!r} on {self.target.where} exists with another "
                f"configuration: {'; '.join(wrong)}. Use another stream name (?stream=NAME), "
                "or a stream made by eventbook"
            )

    async def _create_stream(self, want: dict[str, Any]) -> None:
        for attempt in range(CREATE_ATTEMPTS):
            try:
                await api(self._nc, f"$JS.API.STREAM.CREATE.{self.name}", want)
                return
            except ApiError as refused:
                if refused.code < 500:  # the request's fault: subjects taken, a bad setting
                    raise InvalidInput(
                        f"{self.target.where} refused to create JetStream stream "
                        f"{self.name!r} (subjects {self.name}.>): {refused.description}"
                    ) from None
                # the server's fault ("error creating store for stream" was seen once in
                # ~2,000 creations on a busy test server): try again, then report it
                if attempt == CREATE_ATTEMPTS - 1:
                    raise StoreUnavailable(
                        self.target.where, f"creating stream {self.name!r}: {refused}"
                    ) from None
                await asyncio.sleep(0.2 * (attempt + 1))

    # -- append -----------------------------------------------------------------------------

    def append(
        self,
        events: Iterable[NewEvent],
        *,
        expected: Mapping[str, object] | None = None,
        commit_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        self._check_open()
        prepared = prepare_commit(events, expected, commit_id, metadata)
        if self.readonly:
            raise StoreReadOnly(self.target.where, "it was opened with readonly=True")
        return self._call(self._append(prepared), unknown_outcome=True)

    async def _append(self, prepared: PreparedCommit) -> AppendResult:
        nonce = uuid.uuid4().hex
        streams = list(dict.fromkeys(e.stream for e in prepared.events))
        guards = [s for s in prepared.expected if s not in streams]
        if self._clock is not None and self._clock_floor is None:
            last = await direct_get(self._nc, self.name, {"last_by_subj": f"{self.name}.>"})
            if last is not None:
                self._clock_floor = (await self._events([last]))[0].recorded_at
        deadline = time.monotonic() + PUBLISH_RETRY_SECONDS
        uncertain = False  # a publish of this append may have landed without our knowing
        # a stream not in the cache that may be new is first taken to be new: the server
        # refuses the publish if it is not (a refusal costs no more than reading it first)
        guess = {s for s in streams if prepared.expected.get(s, ANY) in (ANY, NO_STREAM)}
        for _ in range(CONFLICT_RETRIES):
            if prepared.commit_id is not None:
                found = await self._find_commit(streams, prepared.commit_id)
                if found:
                    return await self._same_commit(prepared, found)
            for guard in guards:  # a stream the commit only names: read it afresh
                self._versions.pop(guard, None)
            states = await self._stream_states(streams + guards, guess)
            await self._check_expected(prepared, states)
            messages = self._messages(prepared, states, streams, guards, nonce)
            try:
                ack = await self._publish(messages, nonce)
            except UNREACHABLE as exc:
                if time.monotonic() > deadline:
                    raise StoreUnavailable(self.target.where, exc, unknown_outcome=True) from None
                uncertain = True
                await asyncio.sleep(0.25)
                continue
            except ApiError as exc:
                if exc.err_code == ERR_WRONG_LAST_SEQUENCE:
                    landed = await self._landed(streams[0], states, nonce) if uncertain else None
                    if landed:
                        return _result_of(landed)
                    for stream in streams + guards:
                        self._versions.pop(stream, None)
                    guess = set()
                    continue
                if exc.err_code == ERR_BATCH_DUPLICATE:
                    return await self._duplicate(prepared, streams, states, nonce)
                if exc.err_code == ERR_BATCH_TOO_LARGE:
                    raise InvalidInput(
                        f"the commit's {len(messages)} events are more than the NATS server "
                        f"takes in one atomic batch ({exc.description}); raise "
                        "jetstream.limits.batch.max_msgs in the server's configuration"
                    ) from None
                raise
            if ack.get("duplicate"):
                return await self._duplicate(prepared, streams, states, nonce)
            return self._written(prepared, states, ack["seq"] - len(messages) + 1)
        raise StoreUnavailable(
            self.target.where, f"the streams kept moving ({CONFLICT_RETRIES} tries)", True
        )

    async def _stream_states(
        self, streams: list[str], guess: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, tuple[int, int]]:
        """(version, last sequence) of each stream, from the cache or the server; a stream
        in `guess` that is not cached is taken to be new (0, 0), for the server to check."""
        known = {s: self._versions[s] for s in streams if s in self._versions}
        known.update((s, (0, 0)) for s in streams if s in guess and s not in known)
        missing = [s for s in streams if s not in known]
        if missing:
            # other appends run on the loop meanwhile and may drop cache entries: keep ours
            got = await asyncio.gather(*(self._last_of(s) for s in missing))
            if len(self._versions) + len(missing) > VERSION_CACHE_MAX:
                self._versions.clear()
            fetched = dict(zip(missing, got, strict=True))
            self._versions.update(fetched)
            known.update(fetched)
        return {s: known[s] for s in streams}

    async def _check_expected(
        self, prepared: PreparedCommit, states: dict[str, tuple[int, int]]
    ) -> None:
        for stream, want in prepared.expected.items():
            try:
                check_expected(stream, want, states[stream][0])
            except WrongExpectedVersion:
                # the cache may be behind: the server's word decides
                self._versions[stream] = fresh = await self._last_of(stream)
                states[stream] = fresh
                check_expected(stream, want, fresh[0])

    def _messages(
        self,
        prepared: PreparedCommit,
        states: dict[str, tuple[int, int]],
        streams: list[str],
        guards: list[str],
        nonce: str,
    ) -> list[tuple[str, bytes, dict[str, str]]]:
        events = prepared.events
        size = len(events)
        now = None
        if self._clock is not None:
            now = self._clock()
            if self._clock_floor is not None and now < self._clock_floor:
                now = self._clock_floor
            self._clock_floor = now
        versions = {s: states[s][0] for s in streams}
        checks: dict[int, str] = {}  # message index -> the stream whose last sequence it checks
        free: list[int] = []
        for i, event in enumerate(events):
            if event.stream not in checks.values():
                checks[i] = event.stream
            else:
                free.append(i)
        messages = []
        for i, event in enumerate(events):
            versions[event.stream] += 1
            first = i == 0
            stored = Payload(
                event.type,
                event.data,
                event.metadata,
                event.occurred_at,
                event.id or new_event_id(),
                event.schema_version,
                versions[event.stream],
                prepared.commit_id,
                i,
                size,
                nonce if first else None,
                prepared.digest if first and prepared.commit_id else None,
                prepared.metadata if first and prepared.metadata else None,
                now if first else None,
            )
            # the commit id as msg id: two appends racing with one id in other streams are
            # caught by the server's duplicate window. A retry of a commit without an id needs
            # none: the stream guards refuse it if it had landed, and the nonce finds it then.
            headers = {"Nats-Msg-Id": prepared.commit_id} if first and prepared.commit_id else {}
            messages.append(
                (
                    subjects.event_subject(self.name, event.stream, prepared.commit_id),
                    stored,
                    headers,
                )
            )
        for guard, index in zip(guards, free, strict=False):
            checks[index] = guard
        out = []
        for i, (subject, stored, headers) in enumerate(messages):
            if i in checks:
                stream = checks[i]
                headers["Nats-Expected-Last-Subject-Sequence"] = str(states[stream][1])
                headers["Nats-Expected-Last-Subject-Sequence-Subject"] = subjects.stream_filter(
                    self.name, stream
                )
            payload = encode_payload(stored)
            if len(payload) + len(subject) + 256 > self._rt.max_payload:
                raise InvalidInput(
                    f"event {i} ({stored.type} in {events[i].stream!r}) is a message of "
                    f"{len(payload)} bytes, more than the NATS server's max_payload "
                    f"({self._rt.max_payload} bytes) allows; raise max_payload in the server's "
                    "configuration or make the event smaller. Nothing was written"
                )
            out.append((subject, payload, headers))
        # guards beyond the commit's spare messages were checked on a fresh read (above),
        # not by the server in the publish (docs/nats.md)
        return out

    async def _publish(self, messages: list[tuple[str, bytes, dict[str, str]]], nonce: str) -> Any:
        nc = self._nc
        if len(messages) == 1:
            subject, payload, headers = messages[0]
            return api_answer(
                await nc.request(subject, payload, timeout=PUBLISH_ACK_SECONDS, headers=headers)
            )
        batch = f"{nonce}-{uuid.uuid4().hex[:8]}"  # a new batch id for every try
        last = len(messages)
        for n, (subject, payload, headers) in enumerate(messages, 1):
            headers["Nats-Batch-Id"] = batch
            headers["Nats-Batch-Sequence"] = str(n)
            if n < last:
                await nc.publish(subject, payload, headers=headers)
        headers["Nats-Batch-Commit"] = "1"
        return api_answer(
            await nc.request(subject, payload, timeout=PUBLISH_ACK_SECONDS, headers=headers)
        )

    def _written(
        self, prepared: PreparedCommit, states: dict[str, tuple[int, int]], first: int
    ) -> AppendResult:
        versions = {s: v for s, (v, _) in states.items()}
        written: dict[str, int] = {}
        last_seq: dict[str, int] = {}
        for i, event in enumerate(prepared.events):
            stream = event.stream
            written[stream] = versions[stream] = versions[stream] + 1
            last_seq[stream] = first + i
        for stream, version in written.items():
            self._versions[stream] = (version, last_seq[stream])
        self._acked = max(self._acked, first + len(prepared.events) - 1)
        if self._watching:
            self._bump()
        return AppendResult(first, first + len(prepared.events) - 1, written, prepared.commit_id)

    async def _find_commit(self, streams: list[str], commit_id: str) -> list[RecordedEvent]:
        """A commit with this id that wrote to one of these streams ([] when none did)."""
        for stream in streams:
            subject = subjects.event_subject(self.name, stream, commit_id)
            msg = await leader_get(self._nc, self.name, {"last_by_subj": subject})
            if msg is not None:
                return await self._commit_at(msg)
        return []

    async def _same_commit(
        self, prepared: PreparedCommit, found: list[RecordedEvent]
    ) -> AppendResult:
        msg = await leader_get(self._nc, self.name, {"seq": found[0].position})
        if msg is None or decode_payload(msg.data).digest != prepared.digest:
            raise DuplicateCommit(prepared.commit_id or "", found[0].position)
        return _result_of(found)

    async def _duplicate(
        self,
        prepared: PreparedCommit,
        streams: list[str],
        states: dict[str, tuple[int, int]],
        nonce: str,
    ) -> AppendResult:
        """The server dropped our publish as a duplicate of an earlier one with its msg id."""
        if prepared.commit_id is not None:
            msg = await leader_get(
                self._nc,
                self.name,
                {"last_by_subj": subjects.commit_filter(self.name, prepared.commit_id)},
            )
            if msg is not None:
                return await self._same_commit(prepared, await self._commit_at(msg))
        landed = await self._landed(streams[0], states, nonce)
        if not landed:
            raise StoreUnavailable(
                self.target.where, "the server called the append a duplicate of nothing found"
            )
        return _result_of(landed)

    async def _landed(
        self, stream: str, states: dict[str, tuple[int, int]], nonce: str
    ) -> list[RecordedEvent]:
        """Our own earlier try of this append, if it was stored: the first event after the
        sequence we expected in the commit's first stream carries our nonce."""
        msg = await leader_get(
            self._nc,
            self.name,
            {
                "seq": states[stream][1] + 1,
                "next_by_subj": subjects.stream_filter(self.name, stream),
            },
        )
        if msg is None or decode_payload(msg.data).nonce != nonce:
            return []
        return await self._commit_at(msg)

    # -- waiting ----------------------------------------------------------------------------

    def wait_for_append(self, after: int, timeout: float) -> bool:
        if self.closed:
            return False
        if not self._watching:
            self._call(self._watch())
        deadline = time.monotonic() + min(timeout, limits.wait_seconds_max)
        while not self.closed:
            with self._wake:
                generation = self._generation
            if self.head_position() > after:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._wake:
                if self._generation == generation:
                    # a message is seen on its subject a moment before the stream stores it
                    self._wake.wait(min(remaining, limits.subscription_poll_seconds_max))
        return False

    async def _watch(self) -> None:
        if self._watching:
            return

        async def seen(_msg: Msg) -> None:
            self._bump()

        await self._nc.subscribe(f"{self.name}.>", cb=seen)
        self._watching = True

    def _bump(self) -> None:
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    # -- the rest ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        info = self._call(api(self._nc, f"$JS.API.STREAM.INFO.{self.name}"))
        stats.update(
            stream=self.name,
            server=self.target.where,
            replicas=info["config"].get("num_replicas"),
            bytes=info["state"].get("bytes"),
        )
        return stats

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with self._wake:
            self._wake.notify_all()
        self._close_snapshots()
        self._rt.close()


OPTIONS = ("stream", "replicas", "readonly", "clock")


def open_nats(url: str, **options: Any) -> NatsStore:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidInput(
            f"unknown option(s) {', '.join(unknown)}; a nats:// store takes "
            + ", ".join(f"{name}=" for name in OPTIONS)
        )
    return NatsStore(url, **options)


def delete_stream(url: str, stream: str) -> None:
    """Delete a store's JetStream stream and every event in it (for tests and tools)."""
    target = parse_url(url, stream)
    runtime = Runtime(target)
    try:
        runtime.run(api(runtime.nc, f"$JS.API.STREAM.DELETE.{target.stream}"))
    except ApiError as exc:
        if exc.err_code != ERR_STREAM_NOT_FOUND:
            raise
    finally:
        runtime.close()


__all__ = ["NatsStore", "delete_stream", "open_nats", "stream_config"]
