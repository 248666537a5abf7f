"""A transfer between two banks that are two services with two stores (issue 8, seeds 003/004):
debit at the sending bank, credit at the receiving one, and a refund when the credit side
refuses — a saga, not a two-phase commit.

Bank A runs `app_a`: the bank's accounts plus interbank transfers (`interbank-{id}`) and the
`interbank` saga. Bank B runs the plain bank (`eventbook.examples.bank.app`). The saga:

    InterbankRequested   -> Withdraw (A, the debit)
    Withdrawn            -> Remote("bank-b", Deposit)          (B, the credit)
    rejected Withdraw    -> CloseInterbank(failed)             (nothing moved)
    InterbankCredited    -> CloseInterbank(completed)          (B said yes)
    InterbankCreditRefused -> Deposit back on A (a compensation: the refund)
    the refund Deposited -> CloseInterbank(refunded)
    InterbankClosed      -> completed, or compensated after a refund

B's answer comes back through `reply`: B's `Deposited` (or its `CommandRejected` of the
Deposit) becomes `RecordInterbankOutcome` on A. How the two are linked (a broker, or in one
process) is `eventbook.sagas.remote` and docs/sagas.md; `eventbook demo interbank` runs it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

import eventbook as eb
from eventbook.examples import bank

TransferId = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=r"^[^\s$/]+$")]
Service = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")]
Amount = Annotated[int, msgspec.Meta(gt=0, le=10**15)]


def transfer_stream(transfer_id: str) -> str:
    return f"interbank-{transfer_id}"


class SendInterbank(eb.Command, tag="SendInterbank"):
    transfer_id: TransferId
    from_account: str
    to_bank: Service
    to_account: str
    amount: Amount

    def streams(self) -> tuple[str, ...]:
        return (transfer_stream(self.transfer_id),)


class RecordInterbankOutcome(eb.Command, tag="RecordInterbankOutcome"):
    transfer_id: TransferId
    credited: bool
    reason: str = ""

    def streams(self) -> tuple[str, ...]:
        return (transfer_stream(self.transfer_id),)


class CloseInterbank(eb.Command, tag="CloseInterbank"):
    transfer_id: TransferId
    outcome: Literal["completed", "refunded", "failed"]

    def streams(self) -> tuple[str, ...]:
        return (transfer_stream(self.transfer_id),)


class InterbankRequested(eb.Event, tag="InterbankRequested"):
    from_account: str
    to_bank: str
    to_account: str
    amount: int


class InterbankCredited(eb.Event, tag="InterbankCredited"):
    pass


class InterbankCreditRefused(eb.Event, tag="InterbankCreditRefused"):
    reason: str


class InterbankClosed(eb.Event, tag="InterbankClosed"):
    outcome: str


class Interbank(msgspec.Struct, frozen=True):
    from_account: str = ""
    to_bank: str = ""
    to_account: str = ""
    amount: int = 0
    status: str = "none"  # requested, credited, refused, completed, refunded, failed


def evolve_interbank(state: Interbank, event: eb.Event) -> Interbank:
    match event:
        case InterbankRequested(from_account=a, to_bank=bank_, to_account=b, amount=amount):
            return Interbank(a, bank_, b, amount, "requested")
        case InterbankCredited():
            return msgspec.structs.replace(state, status="credited")
        case InterbankCreditRefused():
            return msgspec.structs.replace(state, status="refused")
        case InterbankClosed(outcome=outcome):
            return msgspec.structs.replace(state, status=outcome)
    return state


def decide_interbank(command: eb.Command, state: Interbank, ctx: eb.Context) -> eb.Decision:
    match command:
        case SendInterbank(from_account=a, to_bank=bank_, to_account=b, amount=amount):
            if state.status != "none":
                return eb.Rejected("transfer_exists", f"transfer is {state.status}")
            return [InterbankRequested(from_account=a, to_bank=bank_, to_account=b, amount=amount)]
        case RecordInterbankOutcome(credited=credited, reason=reason):
            if state.status != "requested":
                return eb.Rejected("outcome_known", f"transfer is {state.status}")
            return [InterbankCredited() if credited else InterbankCreditRefused(reason=reason)]
        case CloseInterbank(outcome=outcome):
            if state.status in ("completed", "refunded", "failed", "none"):
                return eb.Rejected("not_open", f"transfer is {state.status}")
            return [InterbankClosed(outcome=outcome)]
    return eb.Rejected("unknown_command", type(command).__name__)


transfers = eb.Decider(
    category="interbank",
    initial_state=Interbank(),
    decide=decide_interbank,
    evolve=evolve_interbank,
    version="1",
    describe=lambda t: f"{t.status} {t.amount}",
)


# -- the saga ----------------------------------------------------------------------------------


class InterbankSagaState(msgspec.Struct, frozen=True):
    transfer_id: str = ""
    from_account: str = ""
    to_bank: str = ""
    to_account: str = ""
    amount: int = 0
    step: str = "new"  # debiting, crediting, refunding, closing


def correlate_transfer(event: eb.Event, recorded: eb.RecordedEvent) -> str | None:
    if isinstance(event, InterbankRequested | InterbankCredited | InterbankCreditRefused):
        return recorded.stream.removeprefix("interbank-")
    return None


def react_transfer(
    state: InterbankSagaState, event: eb.Event, ctx: eb.SagaContext
) -> eb.Reaction | None:
    s = msgspec.structs.replace
    match event:
        case InterbankRequested(from_account=a, to_bank=bank_, to_account=b, amount=amount):
            if state.step != "new":
                return None
            return eb.Reaction(
                InterbankSagaState(ctx.saga_id, a, bank_, b, amount, "debiting"),
                commands=[bank.Withdraw(account_id=a, amount=amount)],
            )
        case bank.Withdrawn() if ctx.issued_by_me and state.step == "debiting":
            credit = bank.Deposit(account_id=state.to_account, amount=state.amount)
            return eb.Reaction(
                s(state, step="crediting"), commands=[eb.Remote(state.to_bank, credit)]
            )
        case eb.CommandRejected(command="Withdraw") if state.step == "debiting":
            return eb.Reaction(
                s(state, step="closing"),
                commands=[CloseInterbank(transfer_id=state.transfer_id, outcome="failed")],
            )
        case InterbankCredited() if state.step == "crediting":
            return eb.Reaction(
                s(state, step="closing"),
                commands=[CloseInterbank(transfer_id=state.transfer_id, outcome="completed")],
            )
        case InterbankCreditRefused() if state.step == "crediting":
            refund = bank.Deposit(account_id=state.from_account, amount=state.amount)
            return eb.Reaction(s(state, step="refunding"), compensations=[refund])
        case bank.Deposited() if ctx.issued_by_me and state.step == "refunding":
            return eb.Reaction(
                s(state, step="closing"),
                commands=[CloseInterbank(transfer_id=state.transfer_id, outcome="refunded")],
            )
        case InterbankClosed(outcome=outcome) if ctx.issued_by_me:
            return eb.Reaction(
                s(state, step=outcome),
                status="compensated" if outcome == "refunded" else "completed",
            )
    return None


interbank_saga = eb.Saga(
    name="interbank",
    initial_state=InterbankSagaState(),
    correlate=correlate_transfer,
    react=react_transfer,
)


def reply(event: eb.Event, transfer_id: str, recorded: eb.RecordedEvent) -> eb.Command | None:
    """Bank B's answer to the credit, as a command of bank A."""
    match event:
        case bank.Deposited():
            return RecordInterbankOutcome(transfer_id=transfer_id, credited=True)
        case eb.CommandRejected(command="Deposit", code=code):
            return RecordInterbankOutcome(transfer_id=transfer_id, credited=False, reason=code)
    return None


app_a = eb.Application(
    name="bank-a",
    deciders=[bank.accounts, transfers],
    commands=[*bank.app.commands, SendInterbank, RecordInterbankOutcome, CloseInterbank],
    events=[
        *bank.app.events,
        InterbankRequested,
        InterbankCredited,
        InterbankCreditRefused,
        InterbankClosed,
    ],
    record_rejections=True,
    sagas=[interbank_saga],
)
app_b = bank.app
