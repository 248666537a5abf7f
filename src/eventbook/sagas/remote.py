"""Sagas across services: two stores, linked through a broker, with no two-phase commit.

A saga on service A issues `Remote("b", command)`. A's runner records it (in the saga's
`SagaReacted`, in A's log) and does not execute it. A's outbox relay publishes A's log to the
broker; on service B, a consumer hands the saga events to `CommandInbox.handle`, which executes
the commands addressed to B on B's engine **with the saga's command id**: delivered at least
once, applied once. B's relay publishes B's log; on A, a consumer hands B's events to
`ReplyInbox.handle`, which turns each outcome of a saga's command (its events, or its
`CommandRejected`) into a command of A — `reply(event, saga_id, recorded)` says which —
executed with an id derived from B's event id, so it too is applied once. The saga sees that
command's events in A's log, like any other input.

    inbox_b = CommandInbox(engine_b, "b")
    Consumer(broker_a, "b-commands", inbox_b.handle, "b-inbox.sqlite", categories=["saga_x"])
    replies_a = ReplyInbox(engine_a, reply)
    Consumer(broker_b, "a-replies", replies_a.handle, "a-inbox.sqlite")

Both handlers fit `eventbook.outbox.Consumer` (they take its SQLite connection and do not use
it: their effect is a command, made idempotent by its id) and can be called directly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import msgspec

from eventbook.core.messages import RecordedEvent
from eventbook.engine.engine import Engine
from eventbook.engine.model import Command, CommandRejected
from eventbook.errors import InvalidInput
from eventbook.sagas.model import SAGA_PREFIX, saga_stream_of_command

Reply = Callable[[Any, str, RecordedEvent], Command | None]  # (event, saga id, recorded)


class CommandInbox:
    """Executes on `engine` the commands other services' sagas address to `service`."""

    def __init__(self, engine: Engine, service: str) -> None:
        self.engine = engine
        self.service = service
        self.executed = 0

    def handle(self, _db: sqlite3.Connection | None, event: RecordedEvent) -> None:
        if event.type != "SagaReacted" or not event.stream.startswith(SAGA_PREFIX):
            return
        for record in event.data.get("commands", ()):
            if record.get("to") != self.service:
                continue
            cls = self.engine.app.command_types.get(record["type"])
            if cls is None:
                raise InvalidInput(
                    f"{event.stream} sent {record['type']!r} to {self.service!r}, whose "
                    f"{self.engine.app.name} application declares no such command"
                )
            self.engine.execute(msgspec.convert(record["data"], cls), command_id=record["id"])
            self.executed += 1


class ReplyInbox:
    """Turns the outcomes of a saga's remote commands, as events of the other service, into
    commands of this one (`reply(typed event, saga id, recorded) -> Command | None`), each
    applied once."""

    def __init__(
        self, engine: Engine, reply: Reply, decode: Callable[[RecordedEvent], Any]
    ) -> None:
        self.engine = engine
        self.reply = reply
        self.decode = decode  # the other service's events, typed (its application's decoder)
        self.executed = 0

    def handle(self, _db: sqlite3.Connection | None, event: RecordedEvent) -> None:
        if event.type == CommandRejected.__struct_config__.tag:
            command_id = event.data.get("command_id", "")
        else:
            command = event.metadata.get("command")
            command_id = command.get("id", "") if isinstance(command, dict) else ""
        if not isinstance(command_id, str) or saga_stream_of_command(command_id) is None:
            return  # not the outcome of a saga's command
        answer = self.reply(self.decode(event), saga_id_of_command(command_id), event)
        if answer is None:
            return
        self.engine.execute(answer, command_id=f"reply:{event.id}")
        self.executed += 1


def saga_id_of_command(command_id: str) -> str:
    """The saga instance id of a saga's command id (`saga_x-ID/3/0` -> `ID`)."""
    stream = saga_stream_of_command(command_id)
    if stream is None:
        raise InvalidInput(f"{command_id!r} is not the id of a saga's command")
    return stream.split("-", 1)[1]


__all__ = ["CommandInbox", "ReplyInbox", "saga_id_of_command"]
