"""Who and why on every commit: the engine records the audit fields, and an application's
AuditPolicy refuses a command without the fields it requires, before anything is written."""

from __future__ import annotations

import dataclasses

import pytest
from audit_support import Clock

import eventbook as eb
from eventbook.examples import bank, bank_interest

AUDITED = dataclasses.replace(bank.app, audit=eb.AuditPolicy(required=("actor", "reason")))


def test_every_event_of_a_commit_carries_the_audit_fields(
    any_store: eb.EventStore, clock: Clock
) -> None:
    engine = eb.Engine(bank.app, any_store, clock=clock)
    engine.run("OpenAccount", {"account_id": "a"}, metadata={"actor": "ann"})
    engine.run("OpenAccount", {"account_id": "b"})
    meta = {"actor": "ann", "reason": "rent", "correlation_id": "c-1", "causation_id": "x-9"}
    done = engine.run(
        "Transfer", {"from_account": "a", "to_account": "b", "amount": 5}, metadata=meta
    )
    assert not done.accepted  # insufficient funds: the rejection is recorded with its audit
    engine.run("Deposit", {"account_id": "a", "amount": 9}, metadata=meta)
    moved = engine.run(
        "Transfer", {"from_account": "a", "to_account": "b", "amount": 5}, metadata=meta
    )
    assert len(moved.events) == 2
    for rec in [*done.events, *moved.events]:
        assert {k: rec.metadata[k] for k in meta} == meta
        assert rec.metadata["command"]["type"] == "Transfer"
    first = next(any_store.read_all(limit=1))
    assert first.metadata["actor"] == "ann" and "reason" not in first.metadata


def test_a_required_field_missing_is_refused_and_nothing_is_written(
    store: eb.EventStore, clock: Clock
) -> None:
    engine = eb.Engine(AUDITED, store, clock=clock)
    with pytest.raises(eb.InvalidInput, match="requires reason") as caught:
        engine.run("OpenAccount", {"account_id": "a"}, metadata={"actor": "ann"})
    assert "--reason TEXT" in caught.value.message and "nothing was written" in caught.value.message
    with pytest.raises(eb.InvalidInput, match="requires actor and reason"):
        engine.run("OpenAccount", {"account_id": "a"}, command_id="c1")
    assert store.head_position() == 0
    done = engine.run(
        "OpenAccount", {"account_id": "a"}, metadata={"actor": "ann", "reason": "new customer"}
    )
    assert done.accepted and store.head_position() == 1


def test_the_interest_example_requires_an_actor(store: eb.EventStore, clock: Clock) -> None:
    engine = eb.Engine(bank_interest.app, store, clock=clock)
    with pytest.raises(eb.InvalidInput, match="requires actor"):
        engine.run("OpenAccount", {"account_id": "a"})
    assert store.head_position() == 0


@pytest.mark.parametrize(
    ("meta", "fragment"),
    [
        ({"actor": ""}, "actor '' is not allowed"),
        ({"actor": "ann\nroot"}, "no control characters"),
        ({"actor": " ann"}, "leading or trailing space"),
        ({"actor": "x" * 201}, "1 to 200"),
        ({"actor": 7}, "actor must be text, got int"),
        ({"reason": "r" * 1001}, "1 to 1000"),
        ({"correlation_id": "has space"}, "without spaces"),
        ({"causation_id": "é"}, "printable ASCII"),
        ({"now": "2020-01-01"}, "recorded by the engine"),
    ],
)
def test_bad_audit_fields_are_refused(
    store: eb.EventStore, clock: Clock, meta: dict, fragment: str
) -> None:
    engine = eb.Engine(bank.app, store, clock=clock)
    with pytest.raises(eb.InvalidInput, match=fragment.replace("(", r"\(")):
        engine.run("OpenAccount", {"account_id": "a"}, metadata=meta)
    assert store.head_position() == 0


@pytest.mark.parametrize("required", [("who",), "actor", (3,)])
def test_a_policy_names_only_audit_fields(required: object) -> None:
    with pytest.raises(eb.InvalidInput, match="AuditPolicy"):
        eb.AuditPolicy(required=required)  # type: ignore[arg-type]


def test_other_metadata_passes_through(store: eb.EventStore, clock: Clock) -> None:
    engine = eb.Engine(bank.app, store, clock=clock)
    done = engine.run("OpenAccount", {"account_id": "a"}, metadata={"ticket": 17, "actor": None})
    assert done.events[0].metadata["ticket"] == 17
    assert "actor" not in done.events[0].metadata  # None means not given
