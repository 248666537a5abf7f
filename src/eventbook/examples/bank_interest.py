"""Seed 000's opening case: interest was computed wrongly; recompute it and book the difference.

The bank of `bank.py` with savings interest, in two versions of one application:

- `app`: the rule as it was deployed, **deliberately wrong**: the rate of 150 basis points
  (1.5 %) was divided by 100,000 instead of 10,000, so each run paid a tenth of the interest;
- `fixed_app`: the corrected rule, with `correct(before, after)` on the decider, which books
  the difference as one `InterestCorrected` event.

Both require an actor on every command (`eb.AuditPolicy(required=("actor",))`)::

    export EVENTBOOK_APP=eventbook.examples.bank_interest:app
    eventbook --store ./savings run OpenAccount '{"account_id":"a1"}' --actor ann
    eventbook --store ./savings run Deposit '{"account_id":"a1","amount":100000}' --actor ann
    eventbook --store ./savings run PayInterest '{"account_id":"a1"}' --actor batch \\
        --reason "interest run 2026-03"
    eventbook --store ./savings what-if --app eventbook.examples.bank_interest:fixed_app
    eventbook --store ./savings what-if --app eventbook.examples.bank_interest:fixed_app \\
        --book --actor ann --reason "interest rule fixed (ticket 17)"

The recorded history is never edited: the correction is appended, names the commits it
corrects in its metadata, and replaying old + correction gives the corrected state.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

import eventbook as eb
from eventbook.examples import bank

RATE_BASIS_POINTS = 150  # 1.5 % per interest run


class PayInterest(eb.Command, tag="PayInterest"):
    account_id: bank.AccountId

    def streams(self) -> tuple[str, ...]:
        return (bank.account_stream(self.account_id),)


class InterestPaid(eb.Event, tag="InterestPaid"):
    amount: int


class InterestCorrected(eb.Event, tag="InterestCorrected"):
    """The difference between the interest paid and the interest due (negative: paid too much)."""

    amount: int


class Savings(msgspec.Struct, frozen=True):
    account_id: str = ""
    opened: bool = False
    balance: int = 0
    movements: int = 0  # deposits, withdrawals and transfers (interest is not a movement)
    interest: int = 0  # all interest credited, corrections included


def evolve(state: Savings, event: eb.Event) -> Savings:
    match event:
        case InterestPaid(amount=amount) | InterestCorrected(amount=amount):
            return msgspec.structs.replace(
                state, balance=state.balance + amount, interest=state.interest + amount
            )
    account = bank.Account(state.account_id, state.opened, state.balance, state.movements)
    after = bank.evolve(account, event)
    return Savings(after.account_id, after.opened, after.balance, after.movements, state.interest)


def wrong_interest(balance: int) -> int:
    return balance * RATE_BASIS_POINTS // 100_000  # the bug: a zero too many


def interest(balance: int) -> int:
    return balance * RATE_BASIS_POINTS // 10_000


def decider_with(rule: Callable[[int], int]) -> Callable[..., eb.Decision]:
    def decide(command: eb.Command, state: Savings, ctx: eb.Context) -> eb.Decision:
        if not isinstance(command, PayInterest):
            return bank.decide(command, state, ctx)  # type: ignore[arg-type]
        if not state.opened:
            return eb.Rejected("no_such_account", f"account {command.account_id} is not open")
        amount = rule(state.balance)
        if amount <= 0:
            return eb.Rejected("no_interest_due", f"no interest on a balance of {state.balance}")
        return [InterestPaid(amount=amount)]

    return decide


def correct(before: Savings, after: Savings) -> list[eb.Event]:
    """Book the interest difference (the only difference a corrected interest rule makes,
    unless later commands came out differently too: what-if --book then refuses)."""
    return [InterestCorrected(amount=after.balance - before.balance)]


def _application(rule: Callable[[int], int]) -> eb.Application:
    return eb.Application(
        name="savings",
        deciders=[
            eb.Decider(
                category="account",
                initial_state=Savings(),
                decide=decider_with(rule),
                evolve=evolve,
                version="1",  # the same evolve in both: only the decision changed
                describe=lambda s: f"balance {s.balance}, interest {s.interest}",
                correct=correct,
            )
        ],
        commands=[bank.OpenAccount, bank.Deposit, bank.Withdraw, bank.Transfer, PayInterest],
        events=[
            bank.AccountOpened,
            bank.Deposited,
            bank.Withdrawn,
            bank.TransferSent,
            bank.TransferReceived,
            InterestPaid,
            InterestCorrected,
        ],
        audit=eb.AuditPolicy(required=("actor",)),
    )


app = _application(wrong_interest)  # as deployed: the wrong rule
fixed_app = _application(interest)  # the fix
