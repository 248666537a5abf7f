"""Server-Sent Events at load: `eventbook serve` (a second process, an embedded durable store)
streams a log growing by 2,000 events/s to 100 subscribers, in one run.

A writer appends the events through the API itself (POST /streams/{id}, 40 events per request,
50 requests/s, paced); 100 subscribers hold GET /subscribe open from the head. Every
subscriber must receive every event, in order, once; an event's lag is the time it reached a
subscriber minus the time its append request was sent (so the append's own commit is counted
in). Subscribers and writer share one asyncio loop in this process and speak HTTP/1.1 written
by hand (a client library would cost more CPU than the server on a 2-core machine). Target
(issue 10): p99 lag < 250 ms.

    python benchmarks/bench_sse.py            # 100 subscribers, 10 s
    python benchmarks/bench_sse.py --quick    # 20 subscribers, 2 s
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from common import (
    Scratch,
    Steps,
    base_parser,
    emit_json,
    environment,
    eventbook_server,
    fmt_ms,
    fmt_rate,
    percentile,
    print_notes,
    print_table,
    verdict,
)
from eventbook.testing.servers import free_port

BATCH = 40  # events per append request
_ID = re.compile(rb"^id: (\d+)$", re.M)


async def _request(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        data = await reader.read()
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head[9:12]), payload


async def _subscriber(
    port: int, after: int, total: int, seen: list[float], done: asyncio.Event, errors: list[str]
) -> None:
    """Reads the stream until `total` events after `after` arrived; records arrival times."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /subscribe?after={after} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    expected = after + 1
    pending = b""
    try:
        while expected <= after + total:
            chunk = await reader.read(262144)
            if not chunk:
                errors.append("the stream ended")
                return
            now = time.perf_counter()
            pending += chunk
            cut = pending.rfind(b"\n\n")
            if cut < 0:
                continue
            block, pending = pending[: cut + 2], pending[cut + 2 :]
            for match in _ID.finditer(block):
                position = int(match.group(1))
                if position != expected:
                    errors.append(f"expected position {expected}, got {position}")
                    return
                seen.append(now)
                expected += 1
    finally:
        writer.close()
        done.set()


async def _run(port: int, subscribers: int, seconds: float, rate: int) -> dict[str, Any]:
    _status, body = await _request(port, "GET", "/log?limit=1")
    head = json.loads(body)["head"]
    requests = int(seconds * rate / BATCH)
    total = requests * BATCH
    arrivals: list[list[float]] = [[] for _ in range(subscribers)]
    errors: list[str] = []
    dones = [asyncio.Event() for _ in range(subscribers)]
    tasks = [
        asyncio.create_task(_subscriber(port, head, total, arrivals[i], dones[i], errors))
        for i in range(subscribers)
    ]
    await asyncio.sleep(0.5)  # every subscriber connected and at the tail
    sent: list[tuple[float, int, int]] = []  # (send time, first, last)
    events = json.dumps({"events": [{"type": "Ticked", "data": {"n": 1}}] * BATCH}).encode()
    started = time.perf_counter()
    for i in range(requests):
        due = started + i * BATCH / rate
        pause = due - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        at = time.perf_counter()
        status, payload = await _request(port, "POST", f"/streams/tick-{i % 10}", events)
        if status != 201:
            raise SystemExit(f"append answered {status}: {payload[:300]!r}")
        answer = json.loads(payload)
        sent.append((at, answer["first_position"], answer["last_position"]))
    written = time.perf_counter() - started
    await asyncio.wait_for(asyncio.gather(*(d.wait() for d in dones)), 60)
    for task in tasks:
        task.cancel()
    send_time = {}
    for at, first, last in sent:
        for p in range(first, last + 1):
            send_time[p] = at
    lags = sorted(
        arrival - send_time[head + k + 1] for times in arrivals for k, arrival in enumerate(times)
    )
    return {
        "rate": total / written,
        "delivered": sum(len(a) for a in arrivals),
        "expected": total * subscribers,
        "lags": lags,
        "errors": errors,
    }


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rate", type=int, default=2000, help="events/s")
    args = parser.parse_args()
    subscribers = args.subscribers or (20 if args.quick else 100)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    scratch = Scratch.create(args.dir, "bench-sse", args.keep)
    port = free_port()
    app = "eventbook.examples.bank:app"
    try:
        with eventbook_server(scratch.path("store"), app, port, "--no-auth"), Steps() as steps:
            task = steps.task(f"{subscribers} subscribers, {seconds:g} s", 1)
            result = asyncio.run(_run(port, subscribers, seconds, args.rate))
            steps.advance(task, force=True)
    finally:
        scratch.close()
    if result["errors"]:
        raise SystemExit(f"a subscriber failed: {result['errors'][0]}")
    lags = result["lags"]
    p50, p99 = percentile(lags, 0.5) * 1000, percentile(lags, 0.99) * 1000
    print_table(
        "Server-Sent Events from eventbook serve (embedded durable store)",
        ["subscribers", "events/s written", "delivered", "p50 lag ms", "p99 lag ms", "max ms"],
        [
            [
                str(subscribers),
                fmt_rate(result["rate"]),
                f"{result['delivered']:,} of {result['expected']:,}",
                fmt_ms(p50),
                fmt_ms(p99),
                fmt_ms(lags[-1] * 1000),
            ]
        ],
        text_columns=1,
    )
    print_notes(["Lag: arrival at a subscriber minus the send time of the append request."])
    emit_json(
        {
            "benchmark": "sse",
            "quick": args.quick,
            "subscribers": subscribers,
            "events_per_s": result["rate"],
            "delivered": result["delivered"],
            "expected": result["expected"],
            "targets": {"p99_lag_ms": verdict(p99, 250, at_most=True)},
            "environment": environment(),
        },
        "bench-sse",
        args.json_out,
    )


if __name__ == "__main__":
    main()
