"""Key-value read models in Redis (redis-py): "O(1) by key" views kept from the log.

Layout, for a key prefix (default ``eventbook:``) and a projection ``name``::

    {prefix}{name}:meta            a hash: the projection's generations and checkpoints
        last                       the highest generation number handed out (never reused)
        active                     the generation queries see
        g{n}:version  g{n}:position  g{n}:status  g{n}:error  g{n}:failed_position
        g{n}:updated_at            one generation; `position` is its checkpoint
        drop:{n}                   a dropped generation whose keys are still being deleted
    {prefix}{name}:g{n}:{key}      the handler's key `key` in generation n

Exactly once: `apply` WATCHes the meta hash, checks that the generation's checkpoint is still
`after` (else `AlreadyApplied`), runs the handler against a `RedisTx` that buffers every write,
and then sends the writes **and** the new checkpoint in one MULTI/EXEC. If anything touched the
meta hash in between (another runner's batch, a switch, a drop) EXEC does nothing and the batch
is tried again from the top (or `AlreadyApplied` is raised when the checkpoint moved). Every
writer of a generation's keys moves its checkpoint in the same EXEC, so the values a handler
read are still the committed ones when its EXEC goes through. A handler that raises after a
racing runner moved the checkpoint (it may have read that runner's writes) is reported as
`AlreadyApplied` too, not as a failing event.

Redis does not roll a MULTI back when one of its commands fails at run time (a WRONGTYPE, say):
the others are kept. So the writes are checked before MULTI (one pipelined round trip: the type
of every hash written to, the committed value of every field incremented) and only SET, DEL,
HSET and HDEL of known-good types are queued; HINCRBY is sent as the HSET of the resulting
value. A value that does not fit stops the projection at that event with a clear message.

Handlers write through the `RedisTx` they are given (keys are the handler's own names, e.g.
``account:a1``; values are str, int or float and read back as str)::

    tx.set(key, value)            tx.get(key)
    tx.hset(key, {field: value})  tx.hget(key, field)     tx.hgetall(key)
    tx.hset(key, field, value)    tx.hincrby(key, field, n)
    tx.hdel(key, *fields)         tx.delete(key)

Reads see the batch's own pending writes first (read-your-own-writes inside a batch), then the
generation's committed values. Queries read the active generation with `get`, `hget`,
`hgetall` and `keys`; a switch of generations never shows a half-deleted old one to them.

Durability is the server's: with Redis's default snapshotting a crash of the server can lose the
last writes, keys and checkpoint together (they are in one EXEC), which are then applied again.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis

from eventbook.errors import EventbookError, InvalidInput
from eventbook.projections.model import Generation, Projection
from eventbook.read_models.base import AlreadyApplied, Batch, ReadModel

Value = str | int | float
T = TypeVar("T")

_FIELDS = ("version", "position", "status", "error", "failed_position", "updated_at")
_GENERATION_FIELD = re.compile(r"^g(\d+):([a-z_]+)$")
_CONFLICT_RETRIES = 200  # EXECs aborted by a concurrent change of the meta hash, then give up
_DELETED = object()  # a key deleted in this batch


class Contended(EventbookError):
    """The meta hash kept changing under a transaction: too many runners on one projection."""


class _Hash:
    """The pending changes of one hash in a batch."""

    __slots__ = ("fields", "incr", "replaced")

    def __init__(self, replaced: bool) -> None:
        self.fields: dict[str, str | None] = {}  # field -> new value (None: deleted)
        self.incr: dict[str, int] = {}  # field -> increment on its (unread) committed value
        self.replaced = replaced  # the key was deleted earlier in the batch


class RedisTx:
    """What a handler writes through: one generation's keys, writes buffered until the EXEC
    that also moves the checkpoint. Reads see this batch's pending writes, then the committed
    values of the generation."""

    def __init__(self, client: redis.Redis, base: str) -> None:
        self._client = client
        self._base = base  # "{prefix}{name}:g{n}:"
        self._pending: dict[str, Any] = {}  # key -> str | _DELETED | _Hash

    def _name(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"a Redis read-model key must be a non-empty str, not {key!r}")
        return self._base + key

    # -- writes (buffered) --------------------------------------------------------------------

    def set(self, key: str, value: Value) -> None:
        self._name(key)
        self._pending[key] = _text(value)

    def delete(self, key: str) -> None:
        self._name(key)
        self._pending[key] = _DELETED

    def hset(
        self, key: str, mapping: Mapping[str, Value] | str, value: Value | None = None
    ) -> None:
        """`hset(key, {field: value, ...})` or `hset(key, field, value)`."""
        if isinstance(mapping, str):
            if value is None:
                raise InvalidInput(f"hset({key!r}, {mapping!r}) needs a value")
            mapping = {mapping: value}
        pending = self._hash(key)
        for field, item in mapping.items():
            pending.fields[_field(field)] = _text(item)
            pending.incr.pop(field, None)

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        """Add `amount` to an integer field (a missing field counts as 0). Returns nothing:
        read the field with `hget` when the new value is needed."""
        if type(amount) is not int:
            raise InvalidInput(f"hincrby({key!r}, {field!r}) needs an int, not {amount!r}")
        pending = self._hash(key)
        field = _field(field)
        if field in pending.fields:
            pending.fields[field] = str(_integer(key, field, pending.fields[field]) + amount)
        elif pending.replaced:
            pending.fields[field] = str(amount)
        else:
            pending.incr[field] = pending.incr.get(field, 0) + amount

    def hdel(self, key: str, *fields: str) -> None:
        pending = self._hash(key)
        for field in fields:
            pending.fields[_field(field)] = None
            pending.incr.pop(field, None)

    def _hash(self, key: str) -> _Hash:
        self._name(key)
        pending = self._pending.get(key)
        if isinstance(pending, _Hash):
            return pending
        if isinstance(pending, str):
            raise InvalidInput(f"key {key!r} was set to a string in this batch, not a hash")
        self._pending[key] = made = _Hash(replaced=pending is _DELETED)
        return made

    # -- reads (pending writes first, then the committed generation) ------------------------

    def get(self, key: str) -> str | None:
        name = self._name(key)
        pending = self._pending.get(key)
        if pending is None:
            return self._client.get(name)
        if pending is _DELETED:
            return None
        if isinstance(pending, _Hash):
            raise InvalidInput(f"key {key!r} holds a hash: read it with hget or hgetall")
        return pending

    def hget(self, key: str, field: str) -> str | None:
        name = self._name(key)
        pending = self._pending.get(key)
        if pending is None:
            return self._client.hget(name, field)
        if pending is _DELETED:
            return None
        if isinstance(pending, str):
            raise InvalidInput(f"key {key!r} holds a string: read it with get")
        if field in pending.fields:
            return pending.fields[field]
        if pending.replaced:
            return None
        committed = self._client.hget(name, field)
        if field not in pending.incr:
            return committed
        resolved = str(_integer(key, field, committed) + pending.incr.pop(field))
        pending.fields[field] = resolved
        return resolved

    def hgetall(self, key: str) -> dict[str, str]:
        name = self._name(key)
        pending = self._pending.get(key)
        if pending is None:
            return self._client.hgetall(name)
        if pending is _DELETED:
            return {}
        if isinstance(pending, str):
            raise InvalidInput(f"key {key!r} holds a string: read it with get")
        found = {} if pending.replaced else self._client.hgetall(name)
        for field, amount in list(pending.incr.items()):
            pending.fields[field] = str(_integer(key, field, found.get(field)) + amount)
            del pending.incr[field]
        for field, item in pending.fields.items():
            if item is None:
                found.pop(field, None)
            else:
                found[field] = item
        return found

    # -- the commit -------------------------------------------------------------------------

    def _resolve(self) -> None:
        """Check the buffered writes against the committed keys (one pipelined round trip)
        and turn increments into values, so that nothing queued in the MULTI can fail."""
        hashes = [
            (key, pending)
            for key, pending in self._pending.items()
            if isinstance(pending, _Hash) and not pending.replaced
        ]
        if not hashes:
            return
        pipe = self._client.pipeline(transaction=False)
        for key, pending in hashes:
            pipe.type(self._base + key)
            for field in pending.incr:
                pipe.hget(self._base + key, field)
        answers = iter(pipe.execute(raise_on_error=False))  # a non-hash's HGET errs: the TYPE
        for key, pending in hashes:  # before it says so
            kind = next(answers)
            committed = [next(answers) for _ in pending.incr]
            if kind not in ("hash", "none"):
                raise InvalidInput(f"key {key!r} holds a Redis {kind}, not a hash")
            for (field, amount), value in zip(pending.incr.items(), committed, strict=True):
                if isinstance(value, Exception):
                    raise value
                pending.fields[field] = str(_integer(key, field, value) + amount)
            pending.incr.clear()

    def _queue(self, pipe: redis.client.Pipeline) -> None:
        for key, pending in self._pending.items():
            name = self._base + key
            if pending is _DELETED:
                pipe.delete(name)
            elif isinstance(pending, str):
                pipe.set(name, pending)
            else:
                if pending.replaced:
                    pipe.delete(name)
                values = {f: v for f, v in pending.fields.items() if v is not None}
                gone = [f for f, v in pending.fields.items() if v is None]
                if gone and not pending.replaced:
                    pipe.hdel(name, *gone)
                if values:
                    pipe.hset(name, mapping=values)


class RedisReadModel(ReadModel):
    """Projections with target "redis": key-value views, one key namespace per generation."""

    kind = "redis"

    def is_transient(self, error: BaseException) -> bool:
        return isinstance(
            error, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError | Contended
        )

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "eventbook:",
        scan_count: int = 1000,
        delete_batch: int = 500,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.scan_count = scan_count
        self.delete_batch = delete_batch
        try:
            self.client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5)
            self.client.ping()
        except (ValueError, redis.RedisError) as exc:
            raise InvalidInput(
                f"cannot use the Redis read model at {_redacted(url)}: {exc}; start a "
                "redis-server there, or give another URL (redis=..., EVENTBOOK_REDIS_URL)"
            ) from exc

    # -- names ------------------------------------------------------------------------------

    def _meta(self, name: str) -> str:
        return f"{self.prefix}{name}:meta"

    def _base(self, name: str, generation: int) -> str:
        return f"{self.prefix}{name}:g{generation}:"

    # -- the runner's side ------------------------------------------------------------------

    def generations(self, name: str) -> list[Generation]:
        return _generations(name, self.client.hgetall(self._meta(name)))

    def create_generation(self, projection: Projection, *, active: bool) -> Generation:
        name = projection.name
        meta = self._meta(name)

        def prepare(fields: dict[str, str]) -> tuple[int, Callable[[Any], None]]:
            numbers = _numbers(fields)
            generation = max([int(fields.get("last", 0)), *numbers]) + 1
            tx = RedisTx(self.client, self._base(name, generation))
            if projection.setup is not None:  # initial keys, written with the generation
                projection.setup(tx)
                tx._resolve()

            def queue(pipe: Any) -> None:
                tx._queue(pipe)
                pipe.hset(
                    meta,
                    mapping={
                        "last": generation,
                        **_generation_fields(generation, projection.version),
                    },
                )
                if active:
                    self._queue_switch(pipe, name, fields, generation)

            return generation, queue

        generation = self._transact(name, prepare)
        self._collect(name)
        for made in self.generations(name):
            if made.generation == generation:
                return made
        # another runner switched to a generation of its own meanwhile, dropping this one: its
        # batches will find it gone (AlreadyApplied)
        return Generation(name, generation, projection.version, active=active)

    def apply(
        self, projection: Projection, generation: int, batch: Batch, after: int, through: int
    ) -> None:
        name = projection.name
        meta = self._meta(name)
        position = f"g{generation}:position"
        for attempt in range(_CONFLICT_RETRIES):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(meta)
                    at = pipe.hget(meta, position)
                    if at is None or int(at) != after:  # moved, or the generation is gone
                        raise AlreadyApplied(name, generation, after)
                    tx = RedisTx(self.client, self._base(name, generation))
                    try:
                        projection.apply_batch(tx, batch)
                        tx._resolve()
                    except Exception as exc:  # it may have read another runner's writes
                        if self.client.hget(meta, position) != at:
                            raise AlreadyApplied(name, generation, after) from exc
                        raise
                    pipe.multi()
                    tx._queue(pipe)
                    pipe.hset(
                        meta, mapping={position: through, f"g{generation}:updated_at": _now()}
                    )
                    pipe.execute()
                    return
                except redis.WatchError:
                    _back_off(attempt)
        raise Contended(
            f"projection {name} generation {generation}: its metadata kept changing during "
            f"{_CONFLICT_RETRIES} tries to apply a batch"
        )

    def activate(self, name: str, generation: int) -> None:
        def prepare(fields: dict[str, str]) -> tuple[None, Callable[[Any], None]]:
            if generation not in _numbers(fields):
                raise InvalidInput(f"projection {name} has no generation {generation}")
            return None, lambda pipe: self._queue_switch(pipe, name, fields, generation)

        self._transact(name, prepare)
        self._collect(name)

    def _queue_switch(self, pipe: Any, name: str, fields: dict[str, str], generation: int) -> None:
        """Queue: `generation` becomes the active one; every other is dropped."""
        meta = self._meta(name)
        for old in _numbers(fields):
            if old != generation:
                self._queue_drop(pipe, meta, old)
        pipe.hset(meta, "active", generation)

    @staticmethod
    def _queue_drop(pipe: Any, meta: str, generation: int) -> None:
        pipe.hdel(meta, *(f"g{generation}:{f}" for f in _FIELDS))
        pipe.hset(meta, f"drop:{generation}", 1)  # its keys go in `_collect`

    def drop(self, name: str, generation: int | None = None) -> None:
        meta = self._meta(name)

        def prepare(fields: dict[str, str]) -> tuple[None, Callable[[Any], None]]:
            numbers = _numbers(fields)
            dropped = numbers if generation is None else [g for g in numbers if g == generation]

            def queue(pipe: Any) -> None:
                for g in dropped:
                    self._queue_drop(pipe, meta, g)
                if fields.get("active") is not None and int(fields["active"]) in dropped:
                    pipe.hdel(meta, "active")

            return None, queue

        self._transact(name, prepare)
        self._collect(name)

    def _collect(self, name: str) -> None:
        """Delete the keys of dropped generations (SCAN and UNLINK in bounded batches), then
        forget them. Left half-done by a crash, it is finished by the next switch or drop."""
        meta = self._meta(name)
        for field in self.client.hkeys(meta):
            if not field.startswith("drop:"):
                continue
            generation = int(field.removeprefix("drop:"))
            pattern = _glob_escaped(self._base(name, generation)) + "*"
            keys: list[str] = []
            for key in self.client.scan_iter(match=pattern, count=self.scan_count):
                keys.append(key)
                if len(keys) >= self.delete_batch:
                    self.client.unlink(*keys)
                    keys.clear()
            if keys:
                self.client.unlink(*keys)
            self.client.hdel(meta, field)

    def mark_failed(self, name: str, generation: int, position: int, error: str) -> None:
        self._update(
            name,
            generation,
            {"status": "stopped", "error": error, "failed_position": position},
        )

    def clear_failure(self, name: str, generation: int) -> None:
        self._update(name, generation, {"status": "running", "error": "", "failed_position": 0})

    def _update(self, name: str, generation: int, values: dict[str, Value]) -> None:
        meta = self._meta(name)

        def prepare(fields: dict[str, str]) -> tuple[None, Callable[[Any], None]]:
            if generation not in _numbers(fields):
                return None, lambda pipe: None  # dropped meanwhile: nothing to mark
            mapping = {f"g{generation}:{k}": v for k, v in values.items()}
            mapping[f"g{generation}:updated_at"] = _now()
            return None, lambda pipe: pipe.hset(meta, mapping=mapping)

        self._transact(name, prepare)

    def _transact(
        self, name: str, prepare: Callable[[dict[str, str]], tuple[T, Callable[[Any], None]]]
    ) -> T:
        """WATCH the meta hash, read it, let `prepare` decide (and read), then queue its
        commands in one MULTI/EXEC; from the top again when the meta hash changed."""
        meta = self._meta(name)
        for attempt in range(_CONFLICT_RETRIES):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(meta)
                    result, queue = prepare(pipe.hgetall(meta))
                    pipe.multi()
                    queue(pipe)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    _back_off(attempt)
        raise Contended(f"projection {name}: its metadata kept changing under this runner")

    # -- the query side ---------------------------------------------------------------------

    def active_generation(self, name: str) -> int | None:
        active = self.client.hget(self._meta(name), "active")
        return int(active) if active is not None else None

    def get(self, name: str, key: str) -> str | None:
        """A string key of a projection's active generation (None when missing)."""
        return self._read(name, lambda pipe, base: pipe.get(base + key), None)

    def hget(self, name: str, key: str, field: str) -> str | None:
        return self._read(name, lambda pipe, base: pipe.hget(base + key, field), None)

    def hgetall(self, name: str, key: str) -> dict[str, str]:
        """A hash of a projection's active generation ({} when missing)."""
        return self._read(name, lambda pipe, base: pipe.hgetall(base + key), {})

    def keys(self, name: str, match: str = "*") -> list[str]:
        """The keys of the active generation matching a glob, without their namespace (SCAN:
        for tools and tests, not for hot paths)."""
        generation = self.active_generation(name)
        if generation is None:
            return []
        base = self._base(name, generation)
        found = sorted(
            k.removeprefix(base)
            for k in self.client.scan_iter(match=_glob_escaped(base) + match, count=self.scan_count)
        )
        if self.active_generation(name) != generation:  # switched meanwhile: read the new one
            return self.keys(name, match)
        return found

    def _read(self, name: str, read: Callable[[Any, str], Any], missing: T) -> T:
        """Read from the active generation: the key and then `active` again in one pipeline;
        an old generation is only deleted after the switch, so an unchanged `active` means the
        read saw a live generation."""
        meta = self._meta(name)
        for _ in range(_CONFLICT_RETRIES):
            active = self.client.hget(meta, "active")
            if active is None:
                return missing
            pipe = self.client.pipeline(transaction=False)
            read(pipe, self._base(name, int(active)))
            pipe.hget(meta, "active")
            value, again = pipe.execute()
            if again == active:
                return missing if value is None else value
        raise Contended(f"projection {name}: its generations kept switching during a read")

    def close(self) -> None:
        self.client.close()


# -- helpers --------------------------------------------------------------------------------


def _generation_fields(generation: int, version: int) -> dict[str, Value]:
    values: dict[str, Value] = {
        "version": version,
        "position": 0,
        "status": "running",
        "error": "",
        "failed_position": 0,
        "updated_at": _now(),
    }
    return {f"g{generation}:{k}": v for k, v in values.items()}


def _numbers(fields: dict[str, str]) -> list[int]:
    """The generations registered in a meta hash."""
    found = set()
    for field in fields:
        match = _GENERATION_FIELD.match(field)
        if match and match.group(2) == "version":
            found.add(int(match.group(1)))
    return sorted(found)


def _generations(name: str, fields: dict[str, str]) -> list[Generation]:
    active = fields.get("active")
    found = []
    for n in _numbers(fields):

        def value(key: str, n: int = n) -> str:
            return fields.get(f"g{n}:{key}", "")

        found.append(
            Generation(
                name=name,
                generation=n,
                version=int(value("version")),
                position=int(value("position") or 0),
                active=active is not None and int(active) == n,
                status=value("status") or "running",
                error=value("error"),
                failed_position=int(value("failed_position") or 0),
                updated_at=datetime.fromisoformat(value("updated_at"))
                if value("updated_at")
                else None,
            )
        )
    return found


def _text(value: Value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value) if isinstance(value, float) else str(value)
    raise InvalidInput(
        f"a Redis read-model value must be a str, int or float, not {type(value).__name__}"
    )


def _field(field: str) -> str:
    if not isinstance(field, str) or not field:
        raise InvalidInput(f"a Redis hash field must be a non-empty str, not {field!r}")
    return field


def _integer(key: str, field: str, value: str | None) -> int:
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(
            f"hash field {field!r} of key {key!r} is {value!r}, not an integer"
        ) from None


def _glob_escaped(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


def _redacted(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


def _back_off(attempt: int) -> None:
    time.sleep(random.random() * min(0.0005 * 2**attempt, 0.05))


def _now() -> str:
    return datetime.now(UTC).isoformat()
