"""A transfer between two banks that are two services with two stores
(`eventbook.examples.interbank`): debit at A, credit at B, a refund when B refuses the credit,
nothing moved when A refuses the debit. Linked directly, through the in-process broker (the
outbox relay and consumer on a MemoryBroker) and through NATS JetStream. The money in both banks
together never changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from interbank_support import ACCOUNTS_A, ACCOUNTS_B, START_BALANCE, Banks, Link, settle

import eventbook as eb
from eventbook.outbox import MemoryBroker, NatsBroker
from eventbook.sagas.inspect import list_sagas

TOTAL = START_BALANCE * (len(ACCOUNTS_A) + len(ACCOUNTS_B))


def story(banks: Banks) -> None:
    banks.send("t1", "ann", "bob", 300)  # credited
    banks.send("t2", "ann", "nobody", 200)  # B refuses: refunded
    banks.send("t3", "amy", "ben", 5000)  # A refuses the debit: nothing moves
    banks.send("t4", "amy", "bob", 1000)  # all of amy's money


def check_story(banks: Banks) -> None:
    assert banks.statuses() == {
        "t1": "completed",
        "t2": "refunded",
        "t3": "failed",
        "t4": "completed",
    }
    assert banks.balances() == {"a:ann": 700, "a:amy": 0, "b:bob": 2300, "b:ben": 1000}
    assert banks.total() == TOTAL
    sagas = {s.id: s.status for s in list_sagas(banks.a)}
    assert sagas == {
        "interbank-t1": "completed",
        "interbank-t2": "compensated",
        "interbank-t3": "completed",
        "interbank-t4": "completed",
    }


def test_linked_directly(open_test_store) -> None:
    banks = Banks(open_test_store("memory"), open_test_store("memory"))
    banks.open_accounts()
    story(banks)
    settle(banks, banks.pump_direct)
    check_story(banks)
    # every message delivered again: nothing changes (commands are applied once by id)
    banks._pumped_a = banks._pumped_b = 0
    settle(banks, banks.pump_direct)
    check_story(banks)


def test_linked_through_the_in_process_broker(open_test_store, tmp_path: Path) -> None:
    banks = Banks(open_test_store("log"), open_test_store("log"))
    banks.open_accounts()
    link = Link(
        banks, MemoryBroker(subject_prefix="banka"), MemoryBroker(subject_prefix="bankb"), tmp_path
    )
    try:
        story(banks)
        settle(banks, link.pump)
        check_story(banks)
    finally:
        link.close()


def test_linked_through_nats(open_test_store, nats_url: str, tmp_path: Path) -> None:
    banks = Banks(open_test_store("log"), open_test_store("nats"))
    banks.open_accounts()
    suffix = tmp_path.name[-8:].upper().replace("-", "_")
    broker_a = NatsBroker(nats_url, stream=f"BANKA_{suffix}", subject_prefix=f"banka{suffix}")
    broker_b = NatsBroker(nats_url, stream=f"BANKB_{suffix}", subject_prefix=f"bankb{suffix}")
    link = Link(banks, broker_a, broker_b, tmp_path)
    try:
        story(banks)
        settle(banks, link.pump)
        check_story(banks)
    finally:
        link.close()
        broker_a.close()
        broker_b.close()


def test_a_remote_command_for_an_unknown_command_type_is_a_clear_error(open_test_store) -> None:
    banks = Banks(open_test_store("memory"), open_test_store("memory"))
    event = eb.RecordedEvent(
        1,
        "saga_interbank-x",
        1,
        "SagaReacted",
        {"commands": [{"id": "saga_interbank-x/1/0", "type": "Nope", "data": {}, "to": "bank-b"}]},
        {},
        None,
        None,
        "e",
        1,
        None,  # type: ignore[arg-type]
    )
    with pytest.raises(eb.InvalidInput, match="declares no such command"):
        banks.inbox_b.handle(None, event)
