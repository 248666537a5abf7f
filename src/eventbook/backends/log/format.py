"""Byte layouts of the embedded log (specified in docs/file-format.md).

All integers are little-endian. A segment is a header followed by frames; a frame is one
event. The frames of one commit are contiguous and carry (commit_count, commit_index), so a
reader knows whether a commit is complete; the first frame of a commit also carries the
commit's digest and metadata.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

import crc32c
import msgspec

from eventbook.core.messages import RecordedEvent

FORMAT_VERSION = 1
META_FILE = "meta.json"
LOCK_FILE = "lock"
SEGMENT_DIR = "segments"
INDEX_DIR = "index"
QUARANTINE_DIR = "quarantine"
POSITION_INDEX_FILE = "positions.idx"
STREAM_INDEX_FILE = "streams.sqlite3"

# Segment header: magic, format version, segment number, log id.
SEGMENT_MAGIC = b"EBLOGSEG"
SEGMENT_HEADER = struct.Struct("<8sII16s")  # 32 bytes

# Frame header: magic, length, crc32c(bytes 12..length), flags, position, version,
# commit_count, commit_index. Payload (MessagePack) follows.
FRAME_MAGIC = b"EBR1"
FRAME_HEADER = struct.Struct("<4sIIIQQII")  # 40 bytes
FRAME_PREFIX = struct.Struct("<4sII")  # magic, length, crc: the part the crc does not cover
FRAME_FIELDS = struct.Struct("<IQQII")  # flags .. commit_index: covered by the crc
FRAME_CRC_START = FRAME_PREFIX.size

# Position index: header, then one entry per position: segment offset, segment number, length.
INDEX_MAGIC = b"EBLOGIDX"
INDEX_HEADER = struct.Struct("<8sII16s")  # 32 bytes
INDEX_ENTRY = struct.Struct("<QII")  # 16 bytes


def segment_name(number: int) -> str:
    return f"{number:010d}.seg"


class CommitHead(RecordedEvent, frozen=True, array_like=True):
    """The first frame of a commit: the event, then the commit's digest and metadata.

    Decoding it as a RecordedEvent ignores the two trailing fields."""

    commit_digest: bytes
    commit_metadata: dict[str, Any]


class FrameHeader(msgspec.Struct, frozen=True):
    length: int
    crc: int
    flags: int
    position: int
    version: int
    commit_count: int
    commit_index: int


_encoder = msgspec.msgpack.Encoder()
_decode_event = msgspec.msgpack.Decoder(RecordedEvent).decode
_decode_head = msgspec.msgpack.Decoder(CommitHead).decode
_pack_prefix = FRAME_PREFIX.pack
_pack_fields = FRAME_FIELDS.pack
_unpack_header = FRAME_HEADER.unpack_from
_crc = crc32c.crc32c


def encode_commit(records: list[RecordedEvent], digest: bytes, metadata: dict[str, Any]) -> bytes:
    """The frames of one commit, ready to be written in one go."""
    count = len(records)
    parts = []
    for index, r in enumerate(records):
        if index == 0:
            payload = _encoder.encode(
                CommitHead(
                    r.position,
                    r.stream,
                    r.version,
                    r.type,
                    r.data,
                    r.metadata,
                    r.recorded_at,
                    r.occurred_at,
                    r.id,
                    r.schema_version,
                    r.commit_id,
                    digest,
                    metadata,
                )
            )
        else:
            payload = _encoder.encode(r)
        body = _pack_fields(0, r.position, r.version, count, index) + payload
        parts.append(_pack_prefix(FRAME_MAGIC, FRAME_CRC_START + len(body), _crc(body)))
        parts.append(body)
    return b"".join(parts)


def parse_header(buf: bytes | memoryview, offset: int) -> FrameHeader | None:
    """The frame header at `offset`, or None when the bytes there are not a frame start."""
    if len(buf) - offset < FRAME_HEADER.size:
        return None
    magic, length, crc, flags, position, version, count, index = _unpack_header(buf, offset)
    if magic != FRAME_MAGIC or length < FRAME_HEADER.size:
        return None
    return FrameHeader(length, crc, flags, position, version, count, index)


def frame_crc_ok(buf: bytes | memoryview, offset: int, header: FrameHeader) -> bool:
    return _crc(buf[offset + FRAME_CRC_START : offset + header.length]) == header.crc


def indexed_frame(buf: bytes | memoryview, position: int, length: int) -> FrameHeader | None:
    """The header of the record an index entry points at (read into `buf`), when it is the
    whole, valid record of that position and length; None otherwise."""
    header = parse_header(buf, 0)
    if (
        header is None
        or header.position != position
        or header.length != length
        or len(buf) < length
        or not frame_crc_ok(buf, 0, header)
    ):
        return None
    return header


def whole_commits_through(header: FrameHeader) -> int:
    """The last position of a whole commit at or before this record: its own position when
    it ends its commit, else the position before its commit began."""
    if header.commit_index >= header.commit_count - 1:
        return header.position
    return header.position - header.commit_index - 1


def decode_event(buf: bytes | memoryview, offset: int, header: FrameHeader) -> RecordedEvent:
    return _decode_event(buf[offset + FRAME_HEADER.size : offset + header.length])


def decode_head(buf: bytes | memoryview, offset: int, header: FrameHeader) -> CommitHead:
    return _decode_head(buf[offset + FRAME_HEADER.size : offset + header.length])


def encode_meta(log_id: bytes, created_at: datetime) -> bytes:
    return msgspec.json.encode(
        {
            "format": "eventbook-log",
            "format_version": FORMAT_VERSION,
            "log_id": log_id.hex(),
            "created_at": created_at.isoformat(),
        }
    )
