"""The OpenAPI 3.1 document of the HTTP API, made from the application itself: each command
type is a route with its JSON Schema (msgspec's), so the document is always the code's."""

from __future__ import annotations

from typing import Any

import msgspec

from eventbook.engine.model import Application

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


def _param(name: str, where: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


POSITION = {"type": "integer", "minimum": 0}
TIME = {"type": "string", "format": "date-time"}
EVENT = {"$ref": "#/components/schemas/RecordedEvent"}


def openapi_document(app: Application) -> dict[str, Any]:
    commands = sorted(app.command_types.items())
    schemas, components = msgspec.json.schema_components(
        [cls for _, cls in commands], ref_template="#/components/schemas/{name}"
    )
    for name, _cls in commands:  # the type is the path's, not a field of the body
        component = components.get(name, {})
        component.get("properties", {}).pop("type", None)
        if "required" in component:
            component["required"] = [f for f in component["required"] if f != "type"]
    auth = [{"token": []}]
    paths: dict[str, Any] = {}
    for (name, _cls), schema in zip(commands, schemas, strict=True):
        paths[f"/commands/{name}"] = {
            "post": {
                "summary": f"Handle a {name} command",
                "security": auth,
                "parameters": [
                    _param(
                        "Idempotency-Key",
                        "header",
                        {"type": "string", "maxLength": 128},
                        "the command id: the same key again returns the first outcome",
                    )
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                },
                "responses": {
                    "200": _ok("accepted", {"$ref": "#/components/schemas/Outcome"}),
                    "400": _problem("malformed JSON or a bad Idempotency-Key"),
                    "401": _problem("no token, or an unknown or revoked one"),
                    "403": _problem("the token's role is read"),
                    "409": _problem("rejected: the problem's `code` is the rejection code"),
                    "413": _problem("the body is too large"),
                    "422": _problem("the fields do not fit the command"),
                },
            }
        }
    stream = _param("stream", "path", {"type": "string", "minLength": 1}, "a stream id")
    paths["/streams/{stream}"] = {
        "get": {
            "summary": "A stream's events; its version is the ETag",
            "security": auth,
            "parameters": [
                stream,
                _param("from_version", "query", {"type": "integer", "minimum": 1}),
                _param("limit", "query", {"type": "integer", "minimum": 1}),
                _param("backward", "query", {"type": "boolean"}),
            ],
            "responses": {
                "200": _ok("the events", {"$ref": "#/components/schemas/StreamPage"}),
                "404": _problem("the stream has no events"),
            },
        },
        "post": {
            "summary": "Append events; If-Match is the expected version",
            "security": auth,
            "parameters": [
                stream,
                _param("If-Match", "header", {"type": "string"}, 'the expected version, "3", or *'),
                _param("If-None-Match", "header", {"type": "string"}, "* : the stream must be new"),
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Append"}}
                },
            },
            "responses": {
                "201": _ok("appended", {"type": "object"}),
                "412": _problem("the stream is not at the expected version"),
                "422": _problem("the events are not well formed"),
            },
        },
    }
    paths["/log"] = {
        "get": {
            "summary": "The global log after a position",
            "security": auth,
            "parameters": [
                _param("after", "query", POSITION),
                _param("limit", "query", {"type": "integer", "minimum": 1}),
            ],
            "responses": {"200": _ok("a page of the log", {"type": "object"})},
        }
    }
    paths["/subscribe"] = {
        "get": {
            "summary": "Server-Sent Events after a position (id: the position; Last-Event-ID "
            "resumes)",
            "security": auth,
            "parameters": [
                _param("after", "query", POSITION),
                _param("Last-Event-ID", "header", {"type": "string"}),
            ],
            "responses": {"200": {"description": "text/event-stream"}},
        }
    }
    paths["/state/{stream}"] = {
        "get": {
            "summary": "A stream's state now, or at a version, position or time",
            "security": auth,
            "parameters": [
                stream,
                _param("at-version", "query", POSITION),
                _param("at-position", "query", POSITION),
                _param("as-of", "query", TIME, "recorded time: as we knew it"),
                _param("occurred-by", "query", TIME, "occurred time: as it really was"),
            ],
            "responses": {"200": _ok("the state's fields and _meta", {"type": "object"})},
        }
    }
    paths["/read-models"] = {
        "get": {
            "summary": "Projection status; min-position waits until every read model has it",
            "security": auth,
            "parameters": [_param("min-position", "query", POSITION)],
            "responses": {
                "200": _ok("status", {"type": "object"}),
                "504": _problem("not reached in time"),
            },
        }
    }
    paths["/health"] = {
        "get": {"summary": "Health (no token needed)", "responses": {"200": _ok("ok")}}
    }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus text",
            "security": auth,
            "responses": {"200": _ok("metrics")},
        }
    }
    components.update(
        {
            "Problem": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
                "required": ["type", "title", "status"],
            },
            "RecordedEvent": {
                "type": "object",
                "properties": {
                    "position": POSITION,
                    "stream": {"type": "string"},
                    "version": {"type": "integer"},
                    "type": {"type": "string"},
                    "data": {"type": "object"},
                    "metadata": {"type": "object"},
                    "recorded_at": TIME,
                    "occurred_at": TIME,
                    "id": {"type": "string"},
                    "schema_version": {"type": "integer"},
                    "commit_id": {"type": ["string", "null"]},
                },
            },
            "Outcome": {
                "type": "object",
                "properties": {
                    "command_id": {"type": "string"},
                    "command": {"type": "string"},
                    "accepted": {"type": "boolean"},
                    "duplicate": {"type": "boolean"},
                    "position": POSITION,
                    "events": {"type": "array", "items": EVENT},
                },
            },
            "StreamPage": {
                "type": "object",
                "properties": {
                    "stream": {"type": "string"},
                    "version": {"type": "integer"},
                    "events": {"type": "array", "items": EVENT},
                },
            },
            "Append": {
                "type": "object",
                "properties": {
                    "events": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string"},
                                "data": {"type": "object"},
                                "metadata": {"type": "object"},
                                "occurred_at": TIME,
                                "id": {"type": "string"},
                            },
                            "required": ["type"],
                        },
                    }
                },
                "required": ["events"],
            },
        }
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": f"eventbook: {app.name}", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
    }


__all__ = ["openapi_document"]
