"""A bank that runs Deposit commands with ids until it is killed (for test_engine_kill9.py).

argv: STORE FIRST. Command id `dep-N` always deposits `amount_of(N)` into account `a{N % 4}`,
so a resent id must come back as the first outcome. Prints `ACK N` once command N returned.
"""

from __future__ import annotations

import sys

import eventbook as eb
from eventbook.examples import bank

ACCOUNTS = 4


def amount_of(n: int) -> int:
    return n % 7 + 1


def main() -> None:
    store_path, first = sys.argv[1], int(sys.argv[2])
    with eb.open_store(store_path) as store:
        engine = eb.Engine(bank.app, store)
        for a in range(ACCOUNTS):
            engine.execute(bank.OpenAccount(account_id=f"a{a}"), command_id=f"open-a{a}")
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        n = first
        while True:
            command = bank.Deposit(account_id=f"a{n % ACCOUNTS}", amount=amount_of(n))
            outcome = engine.execute(command, command_id=f"dep-{n}")
            assert outcome.accepted
            sys.stdout.write(f"ACK {n}\n")
            sys.stdout.flush()
            n += 1


if __name__ == "__main__":
    main()
