"""Paging a stream read, shared by every backend: checks the arguments, then fetches
version ranges lazily, forward or backward, a bounded page at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from eventbook import limits
from eventbook.core.messages import RecordedEvent
from eventbook.core.validation import check_stream_id
from eventbook.errors import InvalidInput
from eventbook.store.contract import check_limit

FetchVersions = Callable[[int, int], Sequence[RecordedEvent]]  # (first, last) inclusive


def page_stream(
    stream: str,
    version: int,
    fetch: FetchVersions,
    from_version: int | None,
    backward: bool,
    limit: int | None,
) -> Iterator[RecordedEvent]:
    """Check a read_stream call now (so errors raise at the call), then read lazily."""
    check_stream_id(stream)
    limit = check_limit(limit)
    if from_version is not None and (
        not isinstance(from_version, int) or isinstance(from_version, bool) or from_version < 1
    ):
        raise InvalidInput(
            f"from_version must be a version (an integer >= 1), got {from_version!r}"
        )
    return _pages(version, fetch, from_version, backward, limit)


def _pages(
    version: int, fetch: FetchVersions, from_version: int | None, backward: bool, limit: int | None
) -> Iterator[RecordedEvent]:
    remaining = version if limit is None else limit
    page = limits.read_page_count_max
    if backward:
        hi = version if from_version is None else min(from_version, version)
        while hi >= 1 and remaining > 0:
            lo = max(1, hi - min(page, remaining) + 1)
            batch = fetch(lo, hi)
            yield from reversed(batch)
            remaining -= len(batch)
            hi = lo - 1
        return
    lo = 1 if from_version is None else from_version
    while lo <= version and remaining > 0:
        hi = min(version, lo + min(page, remaining) - 1)
        batch = fetch(lo, hi)
        yield from batch
        remaining -= len(batch)
        lo = hi + 1
