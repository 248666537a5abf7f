"""The relay: follows a store's global log and publishes every event to a broker, at least
once, in position order, resuming from its own checkpoint.

Each round reads up to `batch_events` events after the checkpoint position from
`store.read_all` (waiting with `store.wait_for_append` when there are none), publishes them all
(`broker.publish`: for NATS one atomic batch, stored whole with one sync), and only then moves
its position past them. The position is written to the checkpoint file at most every
`checkpoint_seconds` and when the relay stops, always after the broker acknowledged every event
up to it. A crash therefore loses no event: what was published after the last saved position
is published again on restart, with the same message ids (event ids), so the broker drops what
it already stored within its duplicate window and consumers drop the rest by id.

A failed publish (the broker unreachable, an acknowledgement lost) leaves the position where it
was; `run` waits `retry_seconds` and publishes the same events again. The NATS broker starts a
fresh connection for it; what it stored of the failed publish is a prefix of whole batches, and
a retried batch that repeats stored events is published message by message so the broker drops
those copies by id: it never stores an event of a stream after a later one of the same stream.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from eventbook import limits
from eventbook.errors import InvalidInput, StoreCorrupted, StoreUnavailable
from eventbook.outbox.broker import Broker, message_for
from eventbook.store.contract import EventStore

log = logging.getLogger("eventbook.outbox")

CHECKPOINT_FORMAT = 1


class Checkpoint(Protocol):
    def load(self) -> int:
        """The last position the broker acknowledged (0 when none)."""

    def save(self, position: int) -> None:
        """Record `position` durably (it never goes backwards)."""


class MemoryCheckpoint:
    """A checkpoint in memory (a relay that starts from 0 each time, or tests)."""

    def __init__(self, position: int = 0) -> None:
        self.position = position

    def load(self) -> int:
        return self.position

    def save(self, position: int) -> None:
        assert position >= self.position, "a relay checkpoint never goes backwards"
        self.position = position


class FileCheckpoint:
    """A checkpoint in a small JSON file, replaced atomically: written to a temporary file,
    fsynced, renamed over the old one, and the directory fsynced. A crash leaves either the
    old file or the new one, never a torn one."""

    def __init__(self, path: str | os.PathLike[str], *, label: str = "") -> None:
        self.path = Path(path)
        self.label = label  # recorded in the file for people (e.g. the store's URL)
        self._saved: int | None = None

    def load(self) -> int:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._saved = 0
            return 0
        try:
            found = json.loads(text)
            position = found["position"]
            ok = found.get("format") == CHECKPOINT_FORMAT and isinstance(position, int)
        except (ValueError, KeyError, TypeError, AttributeError):
            ok, position = False, None
        if not ok or isinstance(position, bool) or position < 0:  # type: ignore[operator]
            raise StoreCorrupted(
                str(self.path),
                None,
                f'not a relay checkpoint (expected {{"format": {CHECKPOINT_FORMAT}, '
                '"position": N}); move it aside to publish from position 0 again',
            )
        self._saved = position
        return position  # type: ignore[return-value]

    def save(self, position: int) -> None:
        assert self._saved is None or position >= self._saved, "checkpoints never go backwards"
        if position == self._saved:
            return
        body = {"format": CHECKPOINT_FORMAT, "position": position, "label": self.label}
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(json.dumps(body).encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._saved = position


@dataclass(frozen=True)
class RelayStatus:
    position: int  # every event up to here is acknowledged by the broker
    saved: int  # the position in the checkpoint
    head: int  # the store's head when asked
    published: int  # events published by this relay object (duplicates included)
    error: str | None  # the last publish error, until a publish succeeds again

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


Progress = Callable[[RelayStatus], None]


class Relay:
    """Publishes a store's events to a broker; see the module docstring.

    relay = Relay(eventbook.open_store(url), NatsBroker("nats://..."), "relay.checkpoint")
    relay.catch_up()        # everything up to the head as it is now
    relay.start()           # or: follow live in a thread, until relay.stop()
    """

    def __init__(
        self,
        store: EventStore,
        broker: Broker,
        checkpoint: Checkpoint | str | os.PathLike[str],
        *,
        batch_events: int = limits.outbox_batch_events_max,
        checkpoint_seconds: float = 0.1,
        retry_seconds: float = 0.5,
    ) -> None:
        if (
            isinstance(batch_events, bool)
            or not isinstance(batch_events, int)
            or not 1 <= batch_events <= limits.outbox_batch_events_max
        ):
            raise InvalidInput(
                f"batch_events must be an integer 1..{limits.outbox_batch_events_max}, "
                f"got {batch_events!r}"
            )
        for name, value in (
            ("checkpoint_seconds", checkpoint_seconds),
            ("retry_seconds", retry_seconds),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= 3600
            ):
                raise InvalidInput(f"{name} must be a number of seconds 0..3600, got {value!r}")
        if not isinstance(checkpoint, MemoryCheckpoint | FileCheckpoint) and isinstance(
            checkpoint, str | os.PathLike
        ):
            checkpoint = FileCheckpoint(checkpoint, label=store.url)
        self.store = store
        self.broker = broker
        self.checkpoint: Checkpoint = checkpoint
        self.batch_events = batch_events
        self.checkpoint_seconds = checkpoint_seconds
        self.retry_seconds = retry_seconds
        self.position = self.saved = checkpoint.load()
        head = store.head_position()
        if self.position > head:
            raise InvalidInput(
                f"the relay checkpoint is at position {self.position}, past the head of "
                f"{store.url} ({head}): it belongs to another store. Give this store its own "
                "checkpoint (or remove the file to publish from position 0)"
            )
        self.published = 0
        self.error: str | None = None
        self._saved_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one round at a time

    # -- one round ---------------------------------------------------------------------------

    def publish_batch(self, wait: float = 0.0) -> int:
        """Publish the next batch after the position (waiting up to `wait` seconds for one);
        returns how many events it published. Raises StoreUnavailable when the broker did not
        acknowledge them all: the position stays, the next call publishes them again."""
        with self._lock:
            events = list(self.store.read_all(after=self.position, limit=self.batch_events))
            if not events and wait > 0 and self.store.wait_for_append(self.position, wait):
                events = list(self.store.read_all(after=self.position, limit=self.batch_events))
            if not events:
                self._save_if_due()
                return 0
            prefix = self.broker.subject_prefix
            self.broker.publish([message_for(prefix, e) for e in events])
            assert events[0].position > self.position, "the log is read in position order"
            self.position = events[-1].position
            self.published += len(events)
            self.error = None
            self._save_if_due()
            return len(events)

    def catch_up(self, progress: Progress | None = None) -> int:
        """Publish every event up to the head as it is now and save the checkpoint (also when
        a publish fails: then up to what the broker acknowledged); returns how many were
        published. `progress` is called with the status after each batch."""
        head = self.store.head_position()
        count = 0
        try:
            while self.position < head:
                count += self.publish_batch()
                if progress is not None:
                    progress(self.status())
        finally:
            self.save()
        return count

    def save(self) -> None:
        """Write the position to the checkpoint (everything up to it is acknowledged)."""
        if self.position != self.saved:
            self.checkpoint.save(self.position)
            self.saved = self.position
        self._saved_at = time.monotonic()

    def _save_if_due(self) -> None:
        if time.monotonic() - self._saved_at >= self.checkpoint_seconds:
            self.save()

    def status(self) -> RelayStatus:
        return RelayStatus(
            self.position, self.saved, self.store.head_position(), self.published, self.error
        )

    # -- following -------------------------------------------------------------------------

    def run(self, progress: Progress | None = None, idle_wait: float = 0.2) -> None:
        """Publish until `stop()`: batches as events come, a retry every `retry_seconds`
        while the broker (or the store's server) is unavailable. Saves the checkpoint on the
        way out. `progress` is called with the status after each round that did something,
        and at least every `idle_wait` seconds."""
        try:
            while not self._stop.is_set() and not self.store.closed:
                try:
                    done = self.publish_batch(wait=idle_wait)
                except StoreUnavailable as error:
                    if self.error is None:
                        log.warning("relay: %s; retrying every %ss", error, self.retry_seconds)
                    self.error = str(error)
                    if progress is not None:
                        progress(self.status())
                    self._stop.wait(self.retry_seconds)
                    continue
                if progress is not None and (done or idle_wait > 0):
                    progress(self.status())
        finally:
            self.save()

    def start(self) -> Relay:
        """Run in a daemon thread until `stop()`."""
        assert self._thread is None, "the relay is running already"
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="eventbook-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop following (after the round in progress) and save the checkpoint."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            with self._lock:
                self.save()

    def wait_for(self, position: int, timeout: float) -> bool:
        """Whether the broker acknowledged every event up to `position` within `timeout`."""
        deadline = time.monotonic() + timeout
        while self.position < position:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Checkpoint", "FileCheckpoint", "MemoryCheckpoint", "Relay", "RelayStatus"]
