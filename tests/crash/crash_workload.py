"""The commits the crash tests write, and the checks they run on a store after a crash.

Every commit is a pure function of (seed, commit id), so the test process knows exactly what
the writer process wrote (or was about to write) without being told: any event in the log that
does not match its commit's content, or belongs to a commit nobody issued, is a phantom.

Commit ids are `g<generation>t<thread>k<number>`: a writer process is one generation, each of its
threads appends k = 0, 1, 2, ... in order and prints an acknowledgement line after each append
returns.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field

import eventbook as eb

STREAMS = [f"acct-{i}" for i in range(8)] + [f"order-{i}" for i in range(4)]
COMMIT_ID = re.compile(r"^g(\d+)t(\d+)k(\d+)$")

# Small segments and frequent stream-index flushes, so that kills land in rollovers and in
# SQLite writes too, not only in plain appends.
SMALL_LIMITS = {
    "segment_bytes_max": 192 * 1024,
    "segment_allocate_bytes": 16 * 1024,
    "index_commit_events_max": 64,
}


def apply_small_limits() -> None:
    from eventbook import limits

    for name, value in SMALL_LIMITS.items():
        setattr(limits, name, value)


def commit_id(generation: int, thread: int, number: int) -> str:
    return f"g{generation}t{thread}k{number}"


def commit_events(seed: int, cid: str) -> list[eb.NewEvent]:
    """The events of commit `cid`: one event (most), several streams, many events, or a big one."""
    rng = random.Random(f"{seed}/{cid}")
    kind = rng.random()
    if kind < 0.55:
        count, pad = 1, rng.randrange(0, 200)
    elif kind < 0.85:
        count, pad = rng.randrange(2, 7), rng.randrange(0, 300)
    elif kind < 0.95:
        count, pad = rng.randrange(20, 61), rng.randrange(0, 100)
    else:
        count, pad = rng.randrange(1, 4), rng.randrange(20_000, 90_000)
    events = []
    for i in range(count):
        stream = rng.choice(STREAMS)
        data = {"cid": cid, "i": i, "n": count, "r": rng.randrange(2**40), "pad": "x" * pad}
        events.append(eb.NewEvent(stream, "Tested", data))
    return events


@dataclass
class Ack:
    cid: str
    first: int
    last: int
    versions: dict[str, int]


def ack_line(cid: str, result: eb.AppendResult) -> bytes:
    body = {"c": cid, "f": result.first_position, "l": result.last_position, "v": result.versions}
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


def parse_acks(text: str) -> list[Ack]:
    """Acknowledgement lines; a last line cut by the kill (no newline) is no acknowledgement."""
    acks = []
    for line in text.split("\n")[:-1]:
        if line.startswith("{"):
            body = json.loads(line)
            acks.append(Ack(body["c"], body["f"], body["l"], body["v"]))
    return acks


@dataclass
class Seen:
    """What a check found in the log."""

    head: int = 0
    commits: dict[str, tuple[int, int]] = field(default_factory=dict)  # cid -> first, last
    versions: dict[str, int] = field(default_factory=dict)
    last_k: dict[tuple[int, int], int] = field(default_factory=dict)  # (gen, thread) -> last k


def check_log(store: eb.EventStore, seed: int, acks: dict[str, Ack], where: str) -> Seen:
    """Every acknowledged commit present with exactly its events; no phantom, no partial
    commit; positions gap-free; per-stream versions contiguous; stream reads agree."""
    seen = Seen(head=store.head_position())
    events = list(store.read_all())
    assert [e.position for e in events] == list(range(1, seen.head + 1)), f"{where}: gaps"
    by_stream: dict[str, list[eb.RecordedEvent]] = defaultdict(list)
    i = 0
    while i < len(events):
        cid = events[i].commit_id
        assert cid is not None and COMMIT_ID.match(cid), f"{where}: phantom {events[i]}"
        assert cid not in seen.commits, f"{where}: commit {cid} appears twice"
        expected = commit_events(seed, cid)
        group = events[i : i + len(expected)]
        assert len(group) == len(expected) and all(e.commit_id == cid for e in group), (
            f"{where}: commit {cid} is partial at position {events[i].position}"
        )
        for e, want in zip(group, expected, strict=True):
            assert (e.stream, e.type, e.data) == (want.stream, want.type, want.data), (
                f"{where}: position {e.position} differs from what commit {cid} wrote"
            )
            assert e.version == seen.versions.get(e.stream, 0) + 1, (
                f"{where}: {e.stream} jumps to version {e.version} at position {e.position}"
            )
            seen.versions[e.stream] = e.version
            by_stream[e.stream].append(e)
        seen.commits[cid] = (group[0].position, group[-1].position)
        i += len(expected)
    _check_acks(seen, acks, events, where)
    for stream in STREAMS:
        got = list(store.read_stream(stream))
        assert got == by_stream.get(stream, []), f"{where}: read_stream({stream}) disagrees"
        assert store.stream_version(stream) == seen.versions.get(stream, 0), where
    rng = random.Random(seen.head)
    for position in rng.sample(range(1, seen.head + 1), min(seen.head, 50)):
        assert store.read_event(position) == events[position - 1], where
    return seen


def _check_acks(seen: Seen, acks: dict[str, Ack], events: list, where: str) -> None:
    for ack in acks.values():
        assert seen.commits.get(ack.cid) == (ack.first, ack.last), (
            f"{where}: acknowledged commit {ack.cid} at {ack.first}..{ack.last} is "
            f"{seen.commits.get(ack.cid, 'missing')}"
        )
        versions = {e.stream: e.version for e in events[ack.first - 1 : ack.last]}
        assert versions == ack.versions, f"{where}: versions of {ack.cid} differ"
    # Per writer thread the commits present are k = 0..M in order, and all but the last one
    # were acknowledged (the last may have been written, or even synced, but not yet reported).
    per_thread: dict[tuple[int, int], list[int]] = defaultdict(list)
    for cid in seen.commits:
        g, t, k = map(int, COMMIT_ID.match(cid).groups())  # type: ignore[union-attr]
        per_thread[(g, t)].append(k)
    for key, ks in per_thread.items():
        ks.sort()
        assert ks == list(range(len(ks))), f"{where}: writer {key} has holes: {ks[:20]}..."
        missing_acks = [k for k in ks if commit_id(*key, k) not in acks]
        assert missing_acks in ([], [ks[-1]]), (
            f"{where}: writer {key}: commits {missing_acks} present but never acknowledged"
        )
        seen.last_k[key] = ks[-1]
