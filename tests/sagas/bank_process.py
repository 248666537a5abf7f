"""One bank of the interbank crash test, as a process the test kills with SIGKILL.

    python bank_process.py a|b FOLDER NATS_URL TRANSFERS

Bank A (embedded store FOLDER/a) opens its accounts, sends TRANSFERS interbank transfers (fixed
ids: a restart sends only what is missing), runs the saga, publishes its log (stream BANKA) and
records bank B's answers (from stream BANKB); it prints "DONE" and exits once every transfer is
closed. Bank B (FOLDER/b) opens its accounts, publishes its log (BANKB) and executes the
commands A's saga addresses to it (from BANKA), until the file FOLDER/stop exists.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import eventbook as eb
from eventbook.engine.codec import EventDecoder
from eventbook.examples import bank
from eventbook.examples import interbank as ib
from eventbook.outbox import Consumer, NatsBroker, Relay
from eventbook.sagas.remote import CommandInbox, ReplyInbox

ACCOUNTS = {"a": ["ann", "amy"], "b": ["bob", "ben"]}
START_BALANCE = 1000
RUN_SECONDS_MAX = 90.0


def transfers(count: int) -> list[tuple[str, str, str, int]]:
    """(id, from, to, amount): some credited, some refused by B (to "nobody"), some refused
    by A (more than the balance)."""
    out = []
    for i in range(count):
        source = ACCOUNTS["a"][i % 2]
        target = ["bob", "ben", "nobody"][i % 3]
        amount = 1 + (i * 37) % 150 if i % 7 else 10_000
        out.append((f"t{i}", source, target, amount))
    return out


def open_accounts(engine: eb.Engine, role: str) -> None:
    for name in ACCOUNTS[role]:
        engine.execute(bank.OpenAccount(account_id=name), command_id=f"open-{name}")
        engine.execute(
            bank.Deposit(account_id=name, amount=START_BALANCE), command_id=f"fund-{name}"
        )


def main() -> None:
    role, folder, url, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    deadline = time.monotonic() + RUN_SECONDS_MAX
    broker_a = NatsBroker(url, stream="BANKA", subject_prefix="banka")
    broker_b = NatsBroker(url, stream="BANKB", subject_prefix="bankb")
    store = eb.open_store(folder / role)
    if role == "a":
        engine = eb.Engine(ib.app_a, store)
        open_accounts(engine, "a")
        for tid, source, target, amount in transfers(count):
            engine.execute(
                ib.SendInterbank(
                    transfer_id=tid,
                    from_account=source,
                    to_bank="bank-b",
                    to_account=target,
                    amount=amount,
                ),
                command_id=f"send-{tid}",
            )
        runner = eb.SagaRunner(engine, ib.interbank_saga)
        relay = Relay(store, broker_a, folder / "relay-a.checkpoint")
        replies = ReplyInbox(engine, ib.reply, EventDecoder(ib.app_b).decode)
        consumer = Consumer(
            broker_b,
            "bank-a-replies",
            replies.handle,
            folder / "a-inbox.sqlite",
            categories=["account", "$rejected"],
            workers=1,
        )
        os.write(1, b"READY\n")
        while time.monotonic() < deadline:
            runner.run_once()
            relay.catch_up()
            consumer.run_once(0.05)
            states = [engine.state(f"interbank-{t[0]}").state.status for t in transfers(count)]
            if all(s in ("completed", "refunded", "failed") for s in states):
                os.write(1, b"DONE\n")
                return
    else:
        engine = eb.Engine(ib.app_b, store)
        open_accounts(engine, "b")
        relay = Relay(store, broker_b, folder / "relay-b.checkpoint")
        inbox = CommandInbox(engine, "bank-b")
        consumer = Consumer(
            broker_a,
            "bank-b-commands",
            inbox.handle,
            folder / "b-inbox.sqlite",
            categories=["saga_interbank"],
            workers=1,
        )
        os.write(1, b"READY\n")
        while time.monotonic() < deadline and not (folder / "stop").exists():
            relay.catch_up()
            consumer.run_once(0.05)
            relay.catch_up()


if __name__ == "__main__":
    main()
