"""Commands over HTTP: `eventbook serve` (a second process, uvicorn, an embedded durable store)
under 16 concurrent clients, beside the in-process engine under 16 threads, in one run.

  http       16 keep-alive connections (one asyncio loop, HTTP/1.1 written by hand),
             POST /commands/Deposit to its own account, with a token the server checks
  engine     16 threads calling `engine.execute(Deposit(...))` on an embedded store here
Both durable (every commit fsynced; group commit shares syncs between concurrent commands).
Rates are commands/s over a fixed time (default 10 s, --quick 2 s), median of rounds. Target
(issue 10): HTTP >= 0.5x the in-process engine.

    python benchmarks/bench_http.py            # 3 rounds of 10 s
    python benchmarks/bench_http.py --quick    # CI-sized
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx2

import eventbook as eb
from common import (
    Scratch,
    Steps,
    base_parser,
    emit_json,
    environment,
    eventbook_server,
    fmt_rate,
    fmt_ratio,
    median,
    print_notes,
    print_table,
    ratio,
    verdict,
)
from eventbook.examples import bank
from eventbook.http.tokens import TokenStore
from eventbook.testing.servers import free_port

CLIENTS = 16


def run_engine(path: Path, seconds: float) -> float:
    with eb.open_store(path) as store:
        engine = eb.Engine(bank.app, store)
        for c in range(CLIENTS):
            engine.execute(bank.OpenAccount(account_id=f"a{c}"))
        counts = [0] * CLIENTS
        stop = time.perf_counter() + seconds

        def work(c: int) -> None:
            while time.perf_counter() < stop:
                engine.execute(bank.Deposit(account_id=f"a{c}", amount=1))
                counts[c] += 1

        started = time.perf_counter()
        _run_threads(work)
        return sum(counts) / (time.perf_counter() - started)


def run_http(folder: Path, seconds: float) -> float:
    tokens = TokenStore(folder / "tokens.json")
    _record, token = tokens.create("bench", "write")
    store, app = folder / "store", "eventbook.examples.bank:app"
    tokens_file = str(folder / "tokens.json")
    port = free_port()
    headers = {"Authorization": f"Bearer {token}"}
    with eventbook_server(store, app, port, "--tokens", tokens_file) as base:
        with httpx2.Client(base_url=base, headers=headers) as client:
            for c in range(CLIENTS):
                client.post("/commands/OpenAccount", json={"account_id": f"a{c}"})
        counts = [0] * CLIENTS
        errors: list[str] = []
        started = time.perf_counter()
        asyncio.run(_load(port, token, seconds, counts, errors))
        elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"the server answered {errors[0]}")
    return sum(counts) / elapsed


JSON = "application/json"


async def _load(
    port: int, token: str, seconds: float, counts: list[int], errors: list[str]
) -> None:
    """16 keep-alive connections from one asyncio loop, each sending a request and reading its
    answer in turn; the HTTP/1.1 is written by hand so the load generator costs the server's
    machine as little CPU as it can (a Python client library costs more than the server)."""
    stop = time.perf_counter() + seconds

    async def client(c: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = json.dumps({"account_id": f"a{c}", "amount": 1}).encode()
        request = (
            f"POST /commands/Deposit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: {JSON}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        try:
            while time.perf_counter() < stop:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head[9:12]
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                payload = await reader.readexactly(length)
                if status != b"200":
                    errors.append(f"{status.decode()} {payload[:200].decode()}")
                    return
                counts[c] += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(c) for c in range(CLIENTS)))


def _run_threads(work: object) -> None:
    threads = [threading.Thread(target=work, args=(c,)) for c in range(CLIENTS)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="per measurement")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    rounds = args.rounds or (1 if args.quick else 3)
    scratch = Scratch.create(args.dir, "bench-http", args.keep)
    rates: dict[str, list[float]] = {"http": [], "engine": []}
    try:
        with Steps() as steps:
            task = steps.task("measuring", rounds * 2)
            for r in range(rounds):
                order = ["http", "engine"] if r % 2 == 0 else ["engine", "http"]
                for kind in order:
                    folder = scratch.path(f"{kind}-{r}")
                    folder.mkdir()
                    if kind == "http":
                        rates["http"].append(run_http(folder, seconds))
                    else:
                        rates["engine"].append(run_engine(folder / "store", seconds))
                    steps.advance(task, force=True)
    finally:
        scratch.close()
    http, engine = median(rates["http"]), median(rates["engine"])
    print_table(
        f"Durable commands, {CLIENTS} concurrent clients, median of {rounds} rounds of "
        f"{seconds:g} s",
        ["path", "how", "commands/s"],
        [
            ["http", "POST /commands/Deposit, keep-alive, token checked", fmt_rate(http)],
            ["engine", "engine.execute in this process", fmt_rate(engine)],
        ],
    )
    over = ratio(http, engine)
    print_notes([f"HTTP keeps {fmt_ratio(over)} of the in-process engine's rate."])
    emit_json(
        {
            "benchmark": "http",
            "quick": args.quick,
            "rounds": rounds,
            "http_commands_per_s": http,
            "engine_commands_per_s": engine,
            "targets": {"http_over_engine": verdict(over, 0.5)},
            "environment": environment(),
        },
        "bench-http",
        args.json_out,
    )


if __name__ == "__main__":
    main()
