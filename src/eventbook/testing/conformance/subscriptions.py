"""Subscriptions: catch up then go live, resume after a position, idle timeouts, close; and
a closed store refusing every use."""

from __future__ import annotations

import time
from typing import Any

import pytest

import eventbook as eb
from eventbook.testing.conformance.helpers import Consumer, new, positions


class SubscriptionTests:
    """subscribe, and closing subscriptions and stores."""

    def test_subscription_catches_up_then_goes_live(self, store: eb.EventStore) -> None:
        store.append([new("a-1") for _ in range(10)])
        total = 10 + 6 * 4
        consumer = Consumer(store.subscribe(after=0, idle_timeout=10), stop_at=total)
        consumer.wait_for(10)
        for i in range(6):
            store.append([new(f"b-{i % 2}") for _ in range(4)])
            time.sleep(0.01 * (i % 3))
        consumer.join()
        assert consumer.error is None
        assert positions(consumer.got) == list(range(1, total + 1)), "each event once, in order"
        assert consumer.got == list(store.read_all())

    def test_subscription_resumes_after_a_position(self, store: eb.EventStore) -> None:
        store.append([new("a-1") for _ in range(10)])
        assert positions(store.subscribe(after=7, idle_timeout=0.2)) == [8, 9, 10]
        sub = store.subscribe(after=0)
        seen = [next(sub) for _ in range(4)]
        assert positions(seen) == [1, 2, 3, 4] and sub.position == 4
        sub.close()
        store.append([new("a-1")])
        assert positions(store.subscribe(after=sub.position, idle_timeout=0.2)) == list(
            range(5, 12)
        )

    @pytest.mark.parametrize("bad", [float("nan"), -1, "x", True, 10**9])
    def test_subscribe_refuses_a_bad_idle_timeout(self, store: eb.EventStore, bad: Any) -> None:
        with pytest.raises(eb.InvalidInput, match="idle_timeout"):
            store.subscribe(idle_timeout=bad)

    def test_subscription_ends_after_idle_timeout(self, store: eb.EventStore) -> None:
        started = time.monotonic()
        assert list(store.subscribe(idle_timeout=0.2)) == []
        waited = time.monotonic() - started
        assert 0.15 <= waited < 5.0
        store.append([new("a-1"), new("a-1")])
        assert positions(store.subscribe(after=0, idle_timeout=0.2)) == [1, 2]

    def test_idle_timeout_counts_from_the_last_event(self, store: eb.EventStore) -> None:
        consumer = Consumer(store.subscribe(after=0, idle_timeout=0.6))
        for _ in range(8):
            store.append([new("a-1")])
            time.sleep(0.1)
        consumer.join()
        assert consumer.error is None
        assert positions(consumer.got) == list(range(1, 9))

    def test_subscription_close_ends_iteration(self, store: eb.EventStore) -> None:
        store.append([new("a-1")])
        sub = store.subscribe(after=1)
        consumer = Consumer(sub)
        time.sleep(0.1)
        sub.close()
        consumer.join(5.0)
        assert consumer.error is None and consumer.got == []

    def test_subscription_close_stops_delivery_at_once(self, store: eb.EventStore) -> None:
        store.append([new("a-1") for _ in range(5)])
        sub = store.subscribe(after=0)
        assert next(sub).position == 1
        sub.close()
        assert list(sub) == []

    def test_store_close_ends_subscriptions(self, store: eb.EventStore) -> None:
        consumer = Consumer(store.subscribe(after=0))
        time.sleep(0.1)
        store.close()
        consumer.join(5.0)
        assert consumer.error is None or isinstance(consumer.error, eb.StoreClosed)
        assert consumer.got == []

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s: s.append([new("a-1")]), id="append"),
            pytest.param(lambda s: s.read_stream("a-1"), id="read_stream"),
            pytest.param(lambda s: s.read_all(), id="read_all"),
            pytest.param(lambda s: s.subscribe(), id="subscribe"),
            pytest.param(lambda s: s.stream_version("a-1"), id="stream_version"),
            pytest.param(lambda s: s.head_position(), id="head_position"),
            pytest.param(lambda s: list(s.streams()), id="streams"),
        ],
    )
    def test_closed_store_refuses_use(self, store: eb.EventStore, call: Any) -> None:
        store.append([new("a-1")])
        store.close()
        store.close()  # idempotent
        with pytest.raises(eb.StoreClosed):
            call(store)
