"""Writing results: one JSON object per line, or rich tables for people.

Both write as they go: event lists are printed a chunk of rows at a time, so reading a large
log needs constant memory and the first rows show up at once.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from eventbook.core.messages import RecordedEvent

table_chunk_rows = 200  # rows rendered per table chunk (bounds memory while streaming)
data_cell_chars_max = 200  # characters of an event's JSON data shown in a table cell


def _fallback(value: object) -> object:
    """JSON for values msgspec does not know (paths in stats, for example): their text."""
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_fallback)


def json_text(value: object) -> str:
    return _encoder.encode(value).decode("utf-8")


def json_line(value: object, *, flush: bool = False) -> None:
    """Write one JSON object and a newline to stdout."""
    sys.stdout.write(json_text(value) + "\n")
    if flush:
        sys.stdout.flush()


def event_dict(event: RecordedEvent) -> dict[str, Any]:
    """A recorded event as a JSON object (RecordedEvent itself encodes as an array)."""
    return {
        "position": event.position,
        "stream": event.stream,
        "version": event.version,
        "type": event.type,
        "data": event.data,
        "metadata": event.metadata,
        "recorded_at": event.recorded_at,
        "occurred_at": event.occurred_at,
        "id": event.id,
        "schema_version": event.schema_version,
        "commit_id": event.commit_id,
    }


def human_time(value: datetime | None) -> str:
    """ISO 8601 to the second; UTC times end in Z."""
    if value is None:
        return ""
    if value.tzinfo is not None and value.utcoffset() == UTC.utcoffset(None):
        return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    return value.isoformat(timespec="seconds")


def short_json(value: object) -> str:
    text = json_text(value)
    if len(text) > data_cell_chars_max:
        return text[: data_cell_chars_max - 1] + "…"
    return text


def stdout_console() -> Console:
    return Console(highlight=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Column:
    header: str
    justify: str = "left"  # "left" | "right"
    width_min: int = 1
    width_max: int | None = None  # None: this column takes the width left over
    style: str | None = None


@dataclass
class TableWriter:
    """A rich table printed a chunk of rows at a time, with one header.

    Column widths are measured on the first chunk and then kept, so the chunks line up.
    """

    console: Console
    columns: Sequence[Column]
    chunk_rows: int = table_chunk_rows
    rows: int = 0
    _pending: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)
    _widths: list[int | None] | None = None

    def add(self, *cells: object, style: str | None = None) -> None:
        assert len(cells) == len(self.columns), "one cell per column"
        self._pending.append((tuple("" if c is None else str(c) for c in cells), style))
        self.rows += 1
        if len(self._pending) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        first = self._widths is None
        if first:
            self._widths = [self._measure(i, column) for i, column in enumerate(self.columns)]
        table = Table(
            box=box.SIMPLE_HEAD,
            show_header=first,
            show_edge=False,
            pad_edge=False,
            expand=any(c.width_max is None for c in self.columns),
            header_style="bold",
        )
        for column, width in zip(self.columns, self._widths, strict=True):
            table.add_column(
                column.header,
                justify=column.justify,  # type: ignore[arg-type]
                width=width,
                min_width=column.width_min,
                ratio=1 if width is None else None,
                no_wrap=True,
                overflow="ellipsis",
                style=column.style,
            )
        for cells, style in self._pending:
            table.add_row(*cells, style=style)
        self._pending.clear()
        self.console.print(table)

    def close(self) -> int:
        """Print what is left; return how many rows were written in all."""
        self.flush()
        return self.rows

    def _measure(self, index: int, column: Column) -> int | None:
        if column.width_max is None:
            return None
        widest = max(
            [cell_len(column.header)] + [cell_len(cells[index]) for cells, _ in self._pending]
        )
        return max(column.width_min, min(widest, column.width_max))


# Console widths from which the event tables show both times, or only the recorded one.
both_times_width_min = 130
one_time_width_min = 100


def event_times(console: Console) -> tuple[str, ...]:
    """Which times an event table shows: as many as fit the console (--json has all)."""
    if console.width >= both_times_width_min:
        return ("occurred at", "recorded at")
    if console.width >= one_time_width_min:
        return ("recorded at",)
    return ()


def event_columns(*, with_stream: bool, times: Sequence[str]) -> list[Column]:
    columns = [Column("position", "right", 8, 20)]
    if with_stream:
        columns.append(Column("stream", width_min=6, width_max=40, style="cyan"))
    columns += [
        Column("version", "right", 7, 20),
        Column("type", width_min=4, width_max=32, style="green"),
    ]
    columns += [Column(name, width_min=20, width_max=25) for name in times]
    columns.append(Column("data", width_min=10))
    return columns


def event_cells(event: RecordedEvent, *, with_stream: bool, times: Sequence[str]) -> list[object]:
    cells: list[object] = [event.position]
    if with_stream:
        cells.append(event.stream)
    cells += [event.version, event.type]
    for name in times:
        cells.append(human_time(event.occurred_at if name == "occurred at" else event.recorded_at))
    cells.append(short_json(event.data))
    return cells


def key_value_table(rows: Sequence[tuple[str, object]], headers: tuple[str, str]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column(headers[0], style="bold")
    table.add_column(headers[1], overflow="fold")
    for key, value in rows:
        if isinstance(value, datetime):
            text = human_time(value)
        elif isinstance(value, dict | list | tuple):
            text = json_text(value)
        else:
            text = str(value)
        table.add_row(key, text)
    return table
