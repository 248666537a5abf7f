"""Upcasters: old event shapes lifted on read, one schema version at a time, never rewritten."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
import pytest
from engine_support import Env

import eventbook as eb
from eventbook.engine.codec import UpcastError

NOTE = "note-n1"


class AddNote(eb.Command, tag="AddNote"):
    note_id: str
    text: str

    def streams(self) -> tuple[str, ...]:
        return (f"note-{self.note_id}",)


class Notes(msgspec.Struct, frozen=True):
    lines: tuple[str, ...] = ()


# -- version 1 of the code: Noted has only text ---------------------------------------------------


class NotedV1(eb.Event, tag="Noted"):
    text: str


def _app_v1() -> eb.Application:
    return eb.Application(
        name="notes",
        deciders=[
            eb.Decider(
                "note",
                Notes(),
                lambda c, s, ctx: [NotedV1(text=c.text)],
                lambda s, e: Notes((*s.lines, e.text)),
            )
        ],
        commands=[AddNote],
        events=[NotedV1],
        snapshot_every=0,
    )


# -- version 3 of the code: Noted gained words (v2) and then lang (v3) ----------------------------


class NotedV3(eb.Event, tag="Noted"):
    schema_version: ClassVar[int] = 3
    text: str
    words: int
    lang: str


def _evolve_v3(state: Notes, event: Any) -> Notes:
    return Notes((*state.lines, f"{event.text}|{event.words}|{event.lang}"))


def _app_v3(*, steps: tuple[int, ...] = (1, 2)) -> tuple[eb.Application, list[str]]:
    app = eb.Application(
        name="notes",
        deciders=[
            eb.Decider(
                "note",
                Notes(),
                lambda c, s, ctx: [NotedV3(text=c.text, words=len(c.text.split()), lang="fr")],
                _evolve_v3,
            )
        ],
        commands=[AddNote],
        events=[NotedV3],
        snapshot_every=0,
    )
    calls: list[str] = []
    if 1 in steps:

        @app.upcaster("Noted", 1)
        def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
            calls.append("1->2")
            assert set(data) == {"text"}
            return {**data, "words": len(data["text"].split())}

    if 2 in steps:

        @app.upcaster("Noted", 2)
        def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
            calls.append("2->3")
            assert "words" in data  # chained: runs on what 1->2 made
            return {**data, "lang": "en" if data["words"] < 3 else "en-long"}

    return app, calls


def test_old_events_are_lifted_through_every_step(env: Env) -> None:
    old = env.engine(_app_v1())
    old.execute(AddNote(note_id="n1", text="hello world"))
    old.execute(AddNote(note_id="n1", text="one two three four"))
    stored = env.log()
    assert [(r.schema_version, r.data) for r in stored] == [
        (1, {"text": "hello world"}),
        (1, {"text": "one two three four"}),
    ]

    app, calls = _app_v3()
    new = env.engine(app)
    assert new.state(NOTE).state == Notes(("hello world|2|en", "one two three four|4|en-long"))
    assert calls == ["1->2", "2->3", "1->2", "2->3"]
    # the new code writes version 3, and reads old and new side by side
    out = new.execute(AddNote(note_id="n1", text="bonjour"))
    assert out.events[0].schema_version == 3
    assert out.events[0].data == {"text": "bonjour", "words": 1, "lang": "fr"}
    want = Notes(("hello world|2|en", "one two three four|4|en-long", "bonjour|1|fr"))
    assert new.state(NOTE).state == want
    assert new.app_state().states == {NOTE: want}
    replica = eb.Replica(app, env.store)
    replica.catch_up()
    assert replica.state(NOTE) == want
    assert [e.state for e in new.history(NOTE)][-1] == want
    # nothing stored was rewritten
    assert env.log()[:2] == stored


def test_an_event_stored_at_version_two_takes_only_the_last_step(env: Env) -> None:
    env.store.append([eb.NewEvent(NOTE, "Noted", {"text": "a b c", "words": 3}, schema_version=2)])
    app, calls = _app_v3()
    assert env.engine(app).state(NOTE).state == Notes(("a b c|3|en-long",))
    assert calls == ["2->3"]


def test_a_missing_upcaster_is_a_clear_error(env: Env) -> None:
    env.engine(_app_v1()).execute(AddNote(note_id="n1", text="hi"))
    app, _ = _app_v3(steps=(1,))
    with pytest.raises(UpcastError) as info:
        env.engine(app).state(NOTE)
    message = str(info.value)
    assert "no upcaster lifts Noted from schema version 2 to 3" in message
    assert '@app.upcaster("Noted", 2)' in message
    assert isinstance(info.value, eb.InvalidInput)
    app, _ = _app_v3(steps=())
    with pytest.raises(UpcastError, match="from schema version 1 to 2"):
        env.engine(app).state(NOTE)
    # a command on that stream cannot be decided either, and writes nothing
    with pytest.raises(UpcastError):
        env.engine(app).execute(AddNote(note_id="n1", text="more"))
    assert env.store.head_position() == 1


def test_an_event_newer_than_the_code_is_refused(env: Env) -> None:
    app, _ = _app_v3()
    env.engine(app).execute(AddNote(note_id="n1", text="hi"))
    with pytest.raises(UpcastError, match="schema version 3, newer than this code reads"):
        env.engine(_app_v1()).state(NOTE)


def test_an_undeclared_or_misshapen_event_is_refused(env: Env) -> None:
    env.store.append([eb.NewEvent(NOTE, "Scribbled", {"text": "x"})])
    with pytest.raises(UpcastError, match="type 'Scribbled', which the notes application"):
        env.engine(_app_v1()).state(NOTE)
    other = "note-n2"
    env.store.append([eb.NewEvent(other, "Noted", {"txt": "typo"})])
    with pytest.raises(UpcastError, match=r"position 2 \(Noted v1\) does not fit NotedV1"):
        env.engine(_app_v1()).state(other)


def test_an_upcaster_that_breaks_the_shape_is_reported(env: Env) -> None:
    env.engine(_app_v1()).execute(AddNote(note_id="n1", text="hi"))
    app, _ = _app_v3(steps=())

    @app.upcaster("Noted", 1)
    def _forgets_words(data: dict[str, Any]) -> dict[str, Any]:
        return data

    @app.upcaster("Noted", 2)
    def _adds_lang(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "lang": "en"}

    with pytest.raises(UpcastError, match="does not fit NotedV3"):
        env.engine(app).state(NOTE)


def test_the_upcaster_gets_a_copy(env: Env) -> None:
    env.engine(_app_v1()).execute(AddNote(note_id="n1", text="hi"))
    app, _ = _app_v3(steps=(2,))

    @app.upcaster("Noted", 1)
    def _mutates(data: dict[str, Any]) -> dict[str, Any]:
        data["words"] = 1
        return data

    engine = env.engine(app)
    assert engine.state(NOTE).state == Notes(("hi|1|en",))
    assert env.log()[0].data == {"text": "hi"}
