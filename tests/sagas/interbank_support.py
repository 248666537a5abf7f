"""Two banks, two stores, one link: the pieces the interbank tests and the crash process share.

`Banks` holds bank A (accounts + interbank transfers + the saga) and bank B (the plain bank),
each on its own store, and moves messages between them either directly (`pump_direct`: the
handlers called over each store's log) or through brokers (`Link`: A's relay publishes A's log,
B's consumer executes the commands addressed to B; B's relay publishes B's log, A's consumer
records B's answers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import eventbook as eb
from eventbook.examples import bank
from eventbook.examples import interbank as ib
from eventbook.outbox import Consumer, Relay
from eventbook.sagas.remote import CommandInbox, ReplyInbox

START_BALANCE = 1000
ACCOUNTS_A = ["ann", "amy"]
ACCOUNTS_B = ["bob", "ben"]  # "nobody" is not an account at B: credits to it are refused


class Banks:
    def __init__(self, store_a: eb.EventStore, store_b: eb.EventStore) -> None:
        self.a, self.b = store_a, store_b
        self.engine_a = eb.Engine(ib.app_a, store_a)
        self.engine_b = eb.Engine(ib.app_b, store_b)
        self.runner = eb.SagaRunner(self.engine_a, ib.interbank_saga)
        self.inbox_b = CommandInbox(self.engine_b, "bank-b")
        self.replies_a = ReplyInbox(self.engine_a, ib.reply, self.engine_b.decoder.decode)
        self._pumped_a = self._pumped_b = 0

    def open_accounts(self) -> None:
        for name in ACCOUNTS_A:
            self.engine_a.execute(bank.OpenAccount(account_id=name), command_id=f"open-{name}")
            self.engine_a.execute(
                bank.Deposit(account_id=name, amount=START_BALANCE), command_id=f"fund-{name}"
            )
        for name in ACCOUNTS_B:
            self.engine_b.execute(bank.OpenAccount(account_id=name), command_id=f"open-{name}")
            self.engine_b.execute(
                bank.Deposit(account_id=name, amount=START_BALANCE), command_id=f"fund-{name}"
            )

    def send(self, transfer_id: str, source: str, target: str, amount: int) -> eb.Outcome:
        command = ib.SendInterbank(
            transfer_id=transfer_id,
            from_account=source,
            to_bank="bank-b",
            to_account=target,
            amount=amount,
        )
        return self.engine_a.execute(command, command_id=f"send-{transfer_id}")

    def pump_direct(self) -> int:
        """Deliver each store's new events to the other bank's handler (no broker)."""
        moved = 0
        for e in self.a.read_all(after=self._pumped_a):
            self.inbox_b.handle(None, e)
            self._pumped_a = e.position
            moved += 1
        for e in self.b.read_all(after=self._pumped_b):
            self.replies_a.handle(None, e)
            self._pumped_b = e.position
            moved += 1
        return moved

    def total(self) -> int:
        """All the money in both banks (a debit not yet credited is counted as in flight)."""
        return sum(self.balances().values()) + self.in_flight()

    def balances(self) -> dict[str, int]:
        out = {}
        for name in ACCOUNTS_A:
            out[f"a:{name}"] = self.engine_a.state(f"account-{name}").state.balance
        for name in ACCOUNTS_B:
            out[f"b:{name}"] = self.engine_b.state(f"account-{name}").state.balance
        return out

    def in_flight(self) -> int:
        """Debited at A, neither credited at B nor refunded yet."""
        flying = 0
        for info in self.a.streams():
            if info.stream.startswith("interbank-"):
                t = self.engine_a.state(info.stream).state
                debited = any(
                    e.type == "Withdrawn"
                    for e in self.a.read_all()
                    if e.metadata.get("command", {})
                    .get("id", "")
                    .startswith(f"saga_interbank-{info.stream.removeprefix('interbank-')}/")
                )
                if debited and t.status in ("requested", "refused"):
                    flying += t.amount
        return flying

    def statuses(self) -> dict[str, str]:
        return {
            info.stream.removeprefix("interbank-"): self.engine_a.state(info.stream).state.status
            for info in self.a.streams()
            if info.stream.startswith("interbank-")
        }


class Link:
    """A's and B's relays and consumers over two brokers (memory or NATS)."""

    def __init__(self, banks: Banks, broker_a: Any, broker_b: Any, folder: Path) -> None:
        self.relay_a = Relay(banks.a, broker_a, folder / "relay-a.checkpoint")
        self.relay_b = Relay(banks.b, broker_b, folder / "relay-b.checkpoint")
        self.to_b = Consumer(
            broker_a,
            "bank-b-commands",
            banks.inbox_b.handle,
            folder / "b-inbox.sqlite",
            categories=["saga_interbank"],
            workers=1,
        )
        self.to_a = Consumer(
            broker_b,
            "bank-a-replies",
            banks.replies_a.handle,
            folder / "a-inbox.sqlite",
            categories=["account", "$rejected"],
            workers=1,
        )

    def pump(self, timeout: float = 0.05) -> int:
        moved = self.relay_a.catch_up() + self.relay_b.catch_up()
        moved += self.to_b.run_once(timeout) + self.to_a.run_once(timeout)
        return moved

    def close(self) -> None:
        self.to_a.close()
        self.to_b.close()


def settle(banks: Banks, pump: Any, rounds: int = 100) -> None:
    """Run the saga and the link until neither has anything left to do."""
    idle = 0
    for _ in range(rounds):
        moved = banks.runner.run_until_idle() + pump()
        idle = idle + 1 if not moved else 0
        if idle >= 2:
            return
    raise AssertionError("the banks did not settle")
