"""Audit queries: by stream, actor, correlation and recorded time, rejections included."""

from __future__ import annotations

from datetime import timedelta

import pytest
from audit_support import Clock

import eventbook as eb
from eventbook.audit import AuditQuery, audit_trail
from eventbook.examples import bank


@pytest.fixture
def engine(store: eb.EventStore, clock: Clock) -> eb.Engine:
    engine = eb.Engine(bank.app, store, clock=clock)
    engine.run("OpenAccount", {"account_id": "a"}, metadata={"actor": "ann", "reason": "new"})
    engine.run("OpenAccount", {"account_id": "b"}, metadata={"actor": "bob"})
    engine.run(
        "Deposit",
        {"account_id": "a", "amount": 10},
        metadata={"actor": "ann", "reason": "salary", "correlation_id": "payroll-3"},
    )
    engine.run(
        "Withdraw",
        {"account_id": "b", "amount": 99},
        command_id="w-1",
        metadata={"actor": "bob", "reason": "cash"},
    )
    engine.run(
        "Transfer",
        {"from_account": "a", "to_account": "b", "amount": 4},
        metadata={"actor": "ann", "correlation_id": "payroll-3", "causation_id": "x"},
    )
    store.append([eb.NewEvent("account-b", "Deposited", {"amount": 1}, metadata={"actor": "dba"})])
    return engine


def entries(store: eb.EventStore, **query: object) -> list:
    return list(audit_trail(store, AuditQuery(**query)))  # type: ignore[arg-type]


def test_every_commit_with_who_why_and_outcome(engine: eb.Engine) -> None:
    found = entries(engine.store)
    assert [e.outcome for e in found] == [
        "accepted",
        "accepted",
        "accepted",
        "rejected",
        "accepted",
        "appended",
    ]
    withdraw = found[3]
    assert (withdraw.actor, withdraw.reason) == ("bob", "cash")
    assert withdraw.command == {
        "type": "Withdraw",
        "id": "w-1",
        "data": {"account_id": "b", "amount": 99},
    }
    assert withdraw.rejection is not None and withdraw.rejection["code"] == "insufficient_funds"
    assert found[4].positions == [5, 6] and found[4].causation_id == "x"
    assert found[5].command is None and found[5].actor == "dba"


def test_by_actor_by_correlation_and_the_default_correlation(engine: eb.Engine) -> None:
    assert [e.position for e in entries(engine.store, actor="ann")] == [1, 3, 5]
    assert [e.position for e in entries(engine.store, correlation="payroll-3")] == [3, 5]
    assert [e.position for e in entries(engine.store, correlation="w-1")] == [4]  # its own id
    assert entries(engine.store, actor="nobody") == []


def test_by_stream_gives_whole_commits_and_rejections(engine: eb.Engine) -> None:
    found = entries(engine.store, stream="account-b")
    assert [e.position for e in found] == [2, 4, 5, 7]
    transfer = found[2]
    assert [ev.stream for ev in transfer.events] == ["account-a", "account-b"]
    assert [e.position for e in entries(engine.store, stream="account-b", actor="bob")] == [2, 4]


def test_by_recorded_time(engine: eb.Engine) -> None:
    times = [e.recorded_at for e in entries(engine.store)]
    found = entries(engine.store, recorded_from=times[2], recorded_to=times[4])
    assert [e.position for e in found] == [3, 4]
    later = entries(engine.store, recorded_from=times[-1] + timedelta(days=1))
    assert later == []
    assert [e.position for e in entries(engine.store, recorded_to=times[1])] == [1]


def test_bad_queries_are_refused() -> None:
    from datetime import datetime

    with pytest.raises(eb.InvalidInput, match="no time zone"):
        AuditQuery(recorded_from=datetime(2026, 1, 1))
    with pytest.raises(eb.InvalidInput, match="without spaces"):
        AuditQuery(correlation="a b")
