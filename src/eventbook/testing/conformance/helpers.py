"""Small helpers shared by the suite's modules: event types and data for round trips, `new`
(a NewEvent with defaults), what a refused append must leave unchanged (`state_of`), the
positions and versions of what was read, an exact JSON comparison, threads and a subscription
consumer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import eventbook as eb


class Deposited(eb.Event, tag="Deposited"):
    schema_version: ClassVar[int] = 2
    amount: int
    memo: str = ""


class Withdrawn(eb.Event, tag="Withdrawn"):
    amount: int


def new(
    stream: str = "s-1", type: str = "Happened", data: Any = None, **fields: Any
) -> eb.NewEvent:
    return eb.NewEvent(stream, type, {} if data is None else data, **fields)


def state_of(store: eb.EventStore) -> tuple[int, list[eb.StreamInfo]]:
    """What must not change when an append is refused."""
    return store.head_position(), list(store.streams())


def positions(events: Any) -> list[int]:
    return [e.position for e in events]


def versions(events: Any) -> list[int]:
    return [e.version for e in events]


def assert_same_json(got: Any, want: Any, where: str = "$") -> None:
    """Equal and of the same JSON kinds (True is not 1, 1.0 is not 1)."""
    assert type(got) is type(want), f"at {where}: got {got!r}, want {want!r}"
    if isinstance(want, dict):
        assert set(got) == set(want), f"at {where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same_json(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"at {where}: {len(got)} items, want {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_json(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"at {where}: got {got!r}, want {want!r}"


def run_in_threads(count: int, target: Callable[[int], Any], timeout: float = 60.0) -> list[Any]:
    """Run target(0..count-1) on threads; each outcome is its return value or the exception."""
    outcomes: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            outcomes[i] = target(i)
        except BaseException as error:
            outcomes[i] = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout}s"
    return outcomes


class Consumer:
    """Iterates a subscription on a thread, collecting what it delivers."""

    def __init__(self, sub: eb.Subscription, stop_at: int | None = None) -> None:
        self.sub = sub
        self.stop_at = stop_at
        self.got: list[eb.RecordedEvent] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.sub:
                self.got.append(event)
                if self.stop_at is not None and event.position >= self.stop_at:
                    return
        except BaseException as error:
            self.error = error

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(self.got) >= count, f"subscription delivered {len(self.got)} of {count}"

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"subscription still iterating after {timeout}s"


ROUND_TRIP_DATA: dict[str, Any] = {
    "text": "plain",
    "unicode": "añ 中文 ☃ 😀 e\u0301 \u05e9\u05dc\u05d5\u05dd \u200b\ufeff",
    "empty_text": "",
    "int_max": 2**63 - 1,
    "int_min": -(2**63),
    "zero": 0,
    "floats": [0.1, -2.5, 1e308, 5e-324, 2.0, 123456.789],
    "bools": [True, False],
    "null": None,
    "empty_list": [],
    "empty_object": {},
    "nested": {"a": [1, {"b": [2, [3, {"c": "deep"}]]}], "ключ": {"🔑": "value"}},
    "key with spaces and . $ dots": 1,
}
