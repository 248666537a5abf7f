"""Reads: read_stream and read_all windows (forward, backward, limits), unknown streams,
laziness, bad arguments refused at the call, and reads across many pages."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

import eventbook as eb
from eventbook import limits
from eventbook.testing.conformance.helpers import new, positions, versions

# read_stream on a 5-event stream: (from_version, backward, limit, versions read).
STREAM_READS = [
    (None, False, None, [1, 2, 3, 4, 5]),
    (3, False, None, [3, 4, 5]),
    (5, False, None, [5]),
    (6, False, None, []),
    (None, True, None, [5, 4, 3, 2, 1]),
    (3, True, None, [3, 2, 1]),
    (1, True, None, [1]),
    (9, True, None, [5, 4, 3, 2, 1]),
    (None, False, 2, [1, 2]),
    (2, False, 2, [2, 3]),
    (4, False, 9, [4, 5]),
    (None, True, 2, [5, 4]),
    (4, True, 2, [4, 3]),
    (None, False, 0, []),
    (None, True, 0, []),
]

# read_all on 8 events: (after, limit, positions read).
ALL_READS = [
    (0, None, [1, 2, 3, 4, 5, 6, 7, 8]),
    (3, None, [4, 5, 6, 7, 8]),
    (7, None, [8]),
    (8, None, []),
    (20, None, []),
    (0, 3, [1, 2, 3]),
    (6, 5, [7, 8]),
    (2, 1, [3]),
    (0, 0, []),
]


class ReadTests:
    """read_stream, read_all and streams."""

    def _two_interleaved_streams(self, store: eb.EventStore) -> dict[int, int]:
        """a-1 gets 5 events, b-1 gets 3, interleaved; returns a-1's version -> position."""
        for i in range(5):
            store.append([new("a-1", data={"v": i + 1})] + ([new("b-1")] if i % 2 == 0 else []))
        return {e.version: e.position for e in store.read_all() if e.stream == "a-1"}

    @pytest.mark.parametrize(("from_version", "backward", "limit", "want"), STREAM_READS)
    def test_read_stream(
        self,
        store: eb.EventStore,
        from_version: int | None,
        backward: bool,
        limit: int | None,
        want: list[int],
    ) -> None:
        position_of = self._two_interleaved_streams(store)
        got = list(
            store.read_stream("a-1", from_version=from_version, backward=backward, limit=limit)
        )
        assert versions(got) == want
        assert all(e.stream == "a-1" for e in got)
        assert [e.data["v"] for e in got] == want
        assert positions(got) == [position_of[v] for v in want]

    def test_read_unknown_stream_yields_nothing(self, store: eb.EventStore) -> None:
        store.append([new("a-1")])
        assert list(store.read_stream("nobody-1")) == []
        assert list(store.read_stream("nobody-1", backward=True)) == []
        assert list(store.read_stream("a-")) == [], "no prefix match"
        assert store.stream_version("nobody-1") == 0
        assert [s.stream for s in store.streams()] == ["a-1"]

    @pytest.mark.parametrize(("after", "limit", "want"), ALL_READS)
    def test_read_all(
        self, store: eb.EventStore, after: int, limit: int | None, want: list[int]
    ) -> None:
        for i in range(4):
            store.append([new(f"s-{i}", data={"p": 2 * i + 1}), new("t-1", data={"p": 2 * i + 2})])
        got = list(store.read_all(after=after, limit=limit))
        assert positions(got) == want
        assert [e.data["p"] for e in got] == want

    def test_reads_are_lazy_iterators(self, store: eb.EventStore) -> None:
        store.append([new("s-1") for _ in range(50)])
        for it in (
            store.read_all(),
            store.read_stream("s-1"),
            store.read_stream("s-1", backward=True),
            store.streams(),
        ):
            assert isinstance(it, Iterator) and not isinstance(it, list | tuple)
        it = store.read_all()
        assert next(it).position == 1 and next(it).position == 2

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s: s.read_stream(""), id="stream-empty"),
            pytest.param(lambda s: s.read_stream("$all"), id="stream-dollar"),
            pytest.param(lambda s: s.read_stream(5), id="stream-int"),
            pytest.param(lambda s: s.read_stream(["s-1"]), id="stream-list"),
            pytest.param(lambda s: s.read_stream("s-1", from_version=0), id="from-version-0"),
            pytest.param(
                lambda s: s.read_stream("s-1", from_version=-1), id="from-version-negative"
            ),
            pytest.param(lambda s: s.read_stream("s-1", from_version=True), id="from-version-bool"),
            pytest.param(lambda s: s.read_stream("s-1", from_version="1"), id="from-version-text"),
            pytest.param(lambda s: s.read_stream("s-1", limit=-1), id="stream-limit-negative"),
            pytest.param(lambda s: s.read_stream("s-1", limit=1.5), id="stream-limit-float"),
            pytest.param(lambda s: s.read_all(after=-1), id="after-negative"),
            pytest.param(lambda s: s.read_all(after=True), id="after-bool"),
            pytest.param(lambda s: s.read_all(after="0"), id="after-text"),
            pytest.param(lambda s: s.read_all(limit=-1), id="all-limit-negative"),
            pytest.param(lambda s: s.subscribe(after=-1), id="subscribe-after-negative"),
        ],
    )
    def test_bad_read_arguments_raise_at_the_call(self, store: eb.EventStore, call: Any) -> None:
        store.append([new("s-1")])
        with pytest.raises(eb.InvalidInput):
            call(store)  # not iterated: checks happen when the read is asked for

    def test_reads_across_many_pages(self, store: eb.EventStore) -> None:
        page = limits.read_page_count_max
        total = 2 * page + 37
        batch = min(limits.append_batch_count_max - 1, 3000)
        written = 0
        while written < total:
            size = min(batch, total - written)
            store.append(
                [new("big-1", data={"i": written + k + 1}) for k in range(size)] + [new("small-1")]
            )
            written += size
        commits = math.ceil(total / batch)
        forward = list(store.read_stream("big-1"))
        assert versions(forward) == list(range(1, total + 1))
        assert [e.data["i"] for e in forward] == list(range(1, total + 1))
        assert positions(forward) == sorted(positions(forward))
        assert versions(store.read_stream("big-1", backward=True)) == list(range(total, 0, -1))
        window = list(store.read_stream("big-1", from_version=page - 5, limit=page + 10))
        assert versions(window) == list(range(page - 5, 2 * page + 5))
        window = list(
            store.read_stream("big-1", from_version=page + 5, backward=True, limit=page + 2)
        )
        assert versions(window) == list(range(page + 5, 3, -1))
        assert positions(store.read_all()) == list(range(1, total + commits + 1))
        assert positions(store.read_all(after=page - 3, limit=page + 6)) == list(
            range(page - 2, 2 * page + 4)
        )
        assert eb.StreamInfo("big-1", total, total + commits - 1) in list(store.streams())
