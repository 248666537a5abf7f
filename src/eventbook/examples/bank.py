"""The bank of seed 001: accounts, deposits, withdrawals and transfers, with overdrafts refused.

Run it from the command line::

    export EVENTBOOK_APP=eventbook.examples.bank:app
    eventbook --store ./bank run OpenAccount '{"account_id":"a1"}'
    eventbook --store ./bank run Deposit '{"account_id":"a1","amount":5}'
    eventbook --store ./bank state account-a1 --json
    eventbook --store ./bank history account-a1

A transfer is one command that produces two events in two streams, appended in one commit.
Amounts are integers (cents): money is never a float.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

import eventbook as eb

Amount = Annotated[int, msgspec.Meta(gt=0, le=10**15)]
AccountId = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\s$]+$")]


def account_stream(account_id: str) -> str:
    return f"account-{account_id}"


# -- commands (imperative) ---------------------------------------------------------------------


class OpenAccount(eb.Command, tag="OpenAccount"):
    account_id: AccountId

    def streams(self) -> tuple[str, ...]:
        return (account_stream(self.account_id),)


class Deposit(eb.Command, tag="Deposit"):
    account_id: AccountId
    amount: Amount

    def streams(self) -> tuple[str, ...]:
        return (account_stream(self.account_id),)


class Withdraw(eb.Command, tag="Withdraw"):
    account_id: AccountId
    amount: Amount

    def streams(self) -> tuple[str, ...]:
        return (account_stream(self.account_id),)


class Transfer(eb.Command, tag="Transfer"):
    from_account: AccountId
    to_account: AccountId
    amount: Amount

    def streams(self) -> tuple[str, ...]:
        if self.from_account == self.to_account:
            return (account_stream(self.from_account),)
        return (account_stream(self.from_account), account_stream(self.to_account))


# -- events (past tense) -----------------------------------------------------------------------


class AccountOpened(eb.Event, tag="AccountOpened"):
    account_id: str


class Deposited(eb.Event, tag="Deposited"):
    amount: int


class Withdrawn(eb.Event, tag="Withdrawn"):
    amount: int


class TransferSent(eb.Event, tag="TransferSent"):
    to_account: str
    amount: int


class TransferReceived(eb.Event, tag="TransferReceived"):
    from_account: str
    amount: int


# -- state -------------------------------------------------------------------------------------


class Account(msgspec.Struct, frozen=True):
    account_id: str = ""
    opened: bool = False
    balance: int = 0
    movements: int = 0


def evolve(state: Account, event: eb.Event) -> Account:
    match event:
        case AccountOpened(account_id=account_id):
            return Account(account_id, True, 0, 0)
        case Deposited(amount=amount) | TransferReceived(amount=amount):
            return msgspec.structs.replace(
                state, balance=state.balance + amount, movements=state.movements + 1
            )
        case Withdrawn(amount=amount) | TransferSent(amount=amount):
            return msgspec.structs.replace(
                state, balance=state.balance - amount, movements=state.movements + 1
            )
    return state


def decide(command: eb.Command, state: Account, ctx: eb.Context) -> eb.Decision:
    match command:
        case OpenAccount(account_id=account_id):
            if state.opened:
                return eb.Rejected("account_exists", f"account {account_id} is already open")
            return [AccountOpened(account_id=account_id)]
    if not state.opened:
        account = getattr(command, "account_id", None) or getattr(command, "from_account", "?")
        return eb.Rejected("no_such_account", f"account {account} is not open")
    match command:
        case Deposit(amount=amount):
            return [Deposited(amount=amount)]
        case Withdraw(amount=amount):
            if amount > state.balance:
                return eb.Rejected(
                    "insufficient_funds", f"balance {state.balance} is less than {amount}"
                )
            return [Withdrawn(amount=amount)]
        case Transfer(from_account=source, to_account=target, amount=amount):
            if source == target:
                return eb.Rejected("same_account", "a transfer needs two different accounts")
            if not ctx.state(account_stream(target)).opened:
                return eb.Rejected("no_such_account", f"account {target} is not open")
            if amount > state.balance:
                return eb.Rejected(
                    "insufficient_funds", f"balance {state.balance} is less than {amount}"
                )
            return [
                TransferSent(to_account=target, amount=amount),
                (account_stream(target), TransferReceived(from_account=source, amount=amount)),
            ]
    return eb.Rejected("unknown_command", type(command).__name__)


accounts = eb.Decider(
    category="account",
    initial_state=Account(),
    decide=decide,
    evolve=evolve,
    version="1",
    describe=lambda account: f"balance {account.balance}",
)

# -- projections (the query side) --------------------------------------------------------------


def _account_of(recorded: eb.RecordedEvent) -> str:
    return recorded.stream.removeprefix("account-")


def _movement(event: eb.Event) -> int:
    match event:
        case Deposited(amount=amount) | TransferReceived(amount=amount):
            return amount
        case Withdrawn(amount=amount) | TransferSent(amount=amount):
            return -amount
    return 0


MOVEMENTS = ["Deposited", "Withdrawn", "TransferSent", "TransferReceived"]


_SIGNS: dict[str, int] = {
    "Deposited": 1,
    "TransferReceived": 1,
    "Withdrawn": -1,
    "TransferSent": -1,
}


def _balances_batch(tx, batch: list[eb.RecordedEvent]) -> None:
    """The same as `balances`, a batch at a time: one write per account touched (the fast
    path of a rebuild). It reads the recorded events' data (`raw_batch`: no typed event is
    decoded for it). Accounts are opened before their movements, so inserting the opened ones
    first and then adding each account's movements leaves what event-by-event would."""
    opened = []
    moves: dict[str, list[int]] = {}  # stream -> [amount, movements, last position]
    signs = _SIGNS
    for recorded in batch:
        sign = signs.get(recorded.type)
        if sign is None:  # AccountOpened
            opened.append((recorded.stream[8:], recorded.position))  # after "account-"
            continue
        move = moves.get(recorded.stream)
        if move is None:
            move = moves[recorded.stream] = [0, 0, 0]
        move[0] += sign * recorded.data["amount"]
        move[1] += 1
        move[2] = recorded.position
    if opened:
        tx.executemany("INSERT INTO {balances} VALUES (?, 0, 0, ?)", opened)
    if moves:
        tx.executemany(
            "UPDATE {balances} SET balance = balance + ?, movements = movements + ?, "
            "position = ? WHERE account_id = ?",
            [(amount, count, last, stream[8:]) for stream, (amount, count, last) in moves.items()],
        )


@eb.projection(
    "balances",
    handles=["AccountOpened", *MOVEMENTS],
    tables={
        "balances": "account_id TEXT PRIMARY KEY, balance INTEGER NOT NULL, "
        "movements INTEGER NOT NULL, position INTEGER NOT NULL"
    },
    batch_handler=_balances_batch,
    raw_batch=True,
)
def balances(tx, event: eb.Event, recorded: eb.RecordedEvent) -> None:
    """Every account's balance: one row per account, O(1) by account id."""
    account = _account_of(recorded)
    if isinstance(event, AccountOpened):
        tx.execute("INSERT INTO {balances} VALUES (?, 0, 0, ?)", (account, recorded.position))
        return
    tx.execute(
        "UPDATE {balances} SET balance = balance + ?, movements = movements + 1, position = ? "
        "WHERE account_id = ?",
        (_movement(event), recorded.position, account),
    )


@eb.projection(
    "passbook",
    handles=MOVEMENTS,
    tables={
        "passbook": "position INTEGER PRIMARY KEY, account_id TEXT NOT NULL, "
        "kind TEXT NOT NULL, amount INTEGER NOT NULL, balance INTEGER NOT NULL, "
        "recorded_at TEXT NOT NULL"
    },
    setup=lambda tx: tx.execute("CREATE INDEX {passbook}_account ON {passbook} (account_id)"),
)
def passbook(tx, event: eb.Event, recorded: eb.RecordedEvent) -> None:
    """Seed 000's passbook (存摺): every movement with the running balance."""
    account = _account_of(recorded)
    row = tx.execute(
        "SELECT balance FROM {passbook} WHERE account_id = ? ORDER BY position DESC LIMIT 1",
        (account,),
    ).fetchone()
    amount = _movement(event)
    tx.execute(
        "INSERT INTO {passbook} VALUES (?, ?, ?, ?, ?, ?)",
        (
            recorded.position,
            account,
            recorded.type,
            amount,
            (row[0] if row else 0) + amount,
            recorded.recorded_at.isoformat(),
        ),
    )


app = eb.Application(
    name="bank",
    deciders=[accounts],
    commands=[OpenAccount, Deposit, Withdraw, Transfer],
    events=[AccountOpened, Deposited, Withdrawn, TransferSent, TransferReceived],
    snapshot_every=100,
    record_rejections=True,
    projections=[balances, passbook],
)
