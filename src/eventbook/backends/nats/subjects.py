"""Stream ids and commit ids as NATS subject tokens, reversibly and without collisions.

A subject token may not hold `.`, `*`, `>` or whitespace. Letters, digits and `-` stand for
themselves; every other character is written as `_` and the two hex digits of each of its
UTF-8 bytes (`_` itself too, as `_5F`), so decoding is unambiguous and two ids never share a
token. `_` alone is the token of "no commit id" (an encoded id never is a lone `_`).

An event's subject is `<STREAM NAME>.<stream token>.<commit token>`: a stream's events are
`<NAME>.<stream token>.*`, a literal prefix the server's subject index finds at once, and a
commit's event in a stream is one literal subject.
"""

from __future__ import annotations

_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
NO_COMMIT = "_"


def encode_token(text: str) -> str:
    """A subject token for any non-empty text."""
    if text.isascii() and all(ord(c) in _PLAIN for c in text):
        return text
    out = []
    for byte in text.encode():
        out.append(chr(byte) if byte in _PLAIN else f"_{byte:02X}")
    return "".join(out)


def decode_token(token: str) -> str:
    """The text a token encodes (the inverse of encode_token)."""
    if "_" not in token:
        return token
    data = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "_":
            data.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            data.append(ord(token[i]))
            i += 1
    return data.decode()


def event_subject(prefix: str, stream: str, commit_id: str | None) -> str:
    commit = NO_COMMIT if commit_id is None else encode_token(commit_id)
    return f"{prefix}.{encode_token(stream)}.{commit}"


def stream_filter(prefix: str, stream: str) -> str:
    """The subject filter of one stream's events."""
    return f"{prefix}.{encode_token(stream)}.*"


def commit_filter(prefix: str, commit_id: str) -> str:
    """The subject filter of one commit's events, in any stream (a server-side scan)."""
    return f"{prefix}.*.{encode_token(commit_id)}"


def stream_of_subject(subject: str) -> str:
    return decode_token(subject.split(".", 2)[1])
