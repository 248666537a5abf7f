"""Between stored shapes and an application's types: events (with upcasting), commands, states.

Upcasters lift old shapes on read, one schema version at a time, chained in order; stored bytes
are never rewritten. States are encoded as MessagePack with sorted keys, and the canonical
state hash is SHA-256 over that encoding of every stream's state, sorted by stream.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import msgspec

from eventbook.core.messages import Event, RecordedEvent
from eventbook.engine.model import Application, Command, Decider
from eventbook.errors import InvalidInput

_state_encoder = msgspec.msgpack.Encoder(order="sorted")


class UpcastError(InvalidInput):
    """A stored shape that the application's upcasters and event types cannot read."""


def lift(app: Application, type_name: str, version: int, data: dict[str, Any], want: int) -> dict:
    """Run the upcasters of `type_name` from `version` up to `want`."""
    if version > want:
        raise UpcastError(
            f"{type_name} is stored with schema version {version}, newer than this code "
            f"reads ({want}); deploy the newer code"
        )
    while version < want:
        step = app.upcasters.get((type_name, version))
        if step is None:
            raise UpcastError(
                f"no upcaster lifts {type_name} from schema version {version} to {version + 1}; "
                f'register one with @app.upcaster("{type_name}", {version})'
            )
        data = step(dict(data))
        version += 1
    return data


class EventDecoder:
    """Typed events from recorded ones, for one application."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self._types = app.event_types

    def decode(self, recorded: RecordedEvent) -> Event:
        cls = self._types.get(recorded.type)
        if cls is None:
            raise UpcastError(
                f"event at position {recorded.position} has type {recorded.type!r}, which the "
                f"{self.app.name} application does not declare"
            )
        data = recorded.data
        if recorded.schema_version != cls.schema_version:
            data = lift(self.app, recorded.type, recorded.schema_version, data, cls.schema_version)
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise UpcastError(
                f"event at position {recorded.position} ({recorded.type} v"
                f"{recorded.schema_version}) does not fit {cls.__name__}: {exc}"
            ) from None


def command_fields(cls: type[Command]) -> str:
    """`{account_id: str, amount: int}`: the fields a command takes, for error messages."""
    info = msgspec.inspect.type_info(cls)
    parts = []
    for f in info.fields:  # type: ignore[attr-defined]
        name = _type_label(f.type)
        parts.append(f"{f.name}: {name}" + ("" if f.required else " (optional)"))
    return "{" + ", ".join(parts) + "}"


def _type_label(t: msgspec.inspect.Type) -> str:
    name = type(t).__name__.removesuffix("Type").lower()
    return {"str": "string", "int": "integer", "float": "number"}.get(name, name)


def parse_command(app: Application, name: str, data: object) -> Command:
    """A typed command from a type name and JSON text or a dict; InvalidInput says what is wrong."""
    cls = app.command_class(name)
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise InvalidInput(
                f"{name} takes a JSON object {command_fields(cls)}; the text is not JSON ({exc})"
            ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{name} takes a JSON object {command_fields(cls)}, got {data!r}")
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{name}: {exc}; {name} takes {command_fields(cls)}") from None


def command_data(command: Command) -> dict[str, Any]:
    data = msgspec.to_builtins(command)
    data.pop("type", None)
    return data


def encode_state(state: Any) -> bytes:
    return _state_encoder.encode(state)


def decode_state(app: Application, decider: Decider, raw: bytes, schema_version: int) -> Any:
    cls = decider.state_type
    want = getattr(cls, "schema_version", 1)
    if schema_version == want:
        return msgspec.msgpack.decode(raw, type=cls)
    data = msgspec.msgpack.decode(raw)
    return msgspec.convert(lift(app, cls.__name__, schema_version, data, want), cls)


def state_schema_version(decider: Decider) -> int:
    return getattr(decider.state_type, "schema_version", 1)


def state_hash(states: Mapping[str, Any]) -> str:
    """The canonical hash of a set of stream states (independent of dict order)."""
    digest = hashlib.sha256()
    for stream in sorted(states):
        digest.update(_state_encoder.encode([stream, states[stream]]))
    return digest.hexdigest()
