"""The one interface every read-model target offers the projection runner.

A target keeps, per projection, generations of its data (tables, keys) and each generation's
checkpoint, and applies a batch of events **and** the new checkpoint in one transaction: either
both are kept or neither. One generation is active (what queries see); a rebuild fills a new
generation while the active one keeps serving, then `activate` switches and drops the old.
"""

from __future__ import annotations

import abc
import re
import time
from collections.abc import Sequence
from typing import Any

from eventbook import limits
from eventbook.core.messages import RecordedEvent
from eventbook.errors import InvalidInput, Timeout
from eventbook.projections.model import Generation, Projection, ProjectionStopped

Batch = Sequence[tuple[RecordedEvent, Any]]  # (recorded event, typed event or None)


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TableSql:
    """What SQL handlers write through: `{table}` in their SQL names the generation's own
    table. Each text is resolved once per transaction. Subclasses say how a physical table
    is written (`qualified`) and run the SQL."""

    def __init__(self, tables: dict[str, str]) -> None:
        self.tables = tables  # the projection's table -> this generation's physical table
        self._resolved: dict[str, str] = {}

    def qualified(self, physical: str) -> str:
        return physical

    def sql(self, text: str) -> str:
        found = self._resolved.get(text)
        if found is None:
            found = self._resolved[text] = _PLACEHOLDER.sub(self._table, text)
        return found

    def _table(self, match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in self.tables:
            raise InvalidInput(
                f"{{{name}}} is not a table of this projection: {sorted(self.tables)}"
            )
        return self.qualified(self.tables[name])


class AlreadyApplied(Exception):
    """The checkpoint moved under this runner: another runner applied the batch."""

    def __init__(self, name: str, generation: int, after: int) -> None:
        super().__init__(f"projection {name} generation {generation} is no longer at {after}")


class ReadModel(abc.ABC):
    kind: str  # "sqlite", "fts", "redis", ...

    @abc.abstractmethod
    def generations(self, name: str) -> list[Generation]:
        """Every generation of a projection, oldest first."""

    def active(self, name: str) -> Generation | None:
        """The generation queries see (None before the projection's first run)."""
        return next((g for g in self.generations(name) if g.active), None)

    @abc.abstractmethod
    def create_generation(self, projection: Projection, *, active: bool) -> Generation:
        """A new, empty generation at position 0 (its tables made); active if asked."""

    @abc.abstractmethod
    def apply(
        self, projection: Projection, generation: int, batch: Batch, after: int, through: int
    ) -> None:
        """Run the handler on each event of the batch and move the checkpoint from `after` to
        `through`, in one transaction. Check the checkpoint first: if it is no longer `after`
        (another runner got there first) nothing is kept and `AlreadyApplied` is raised before
        the handler runs; on any other error nothing is kept and the error is raised."""

    @abc.abstractmethod
    def activate(self, name: str, generation: int) -> None:
        """Make a generation the one queries see, and drop the others, atomically."""

    @abc.abstractmethod
    def drop(self, name: str, generation: int | None = None) -> None:
        """Remove one generation (or all of a projection's) with its data."""

    @abc.abstractmethod
    def mark_failed(self, name: str, generation: int, position: int, error: str) -> None:
        """Stop a generation at the event that keeps failing."""

    @abc.abstractmethod
    def clear_failure(self, name: str, generation: int) -> None: ...

    def wait_for(self, names: Sequence[str], position: int, timeout: float) -> None:
        """Read-your-writes for a query: block until each named projection's active generation
        has applied `position` (its checkpoint, read from the target itself, so this works
        across processes). Raises `eb.Timeout` after `timeout` seconds, or `InvalidInput` at
        once (`ProjectionStopped`) when one of them is stopped before the position."""
        if not names:
            raise InvalidInput("name the projection(s) whose read model the query must wait for")
        if isinstance(timeout, bool) or not 0 <= timeout <= limits.wait_seconds_max:
            raise InvalidInput(f"timeout must be 0..{limits.wait_seconds_max} seconds")
        deadline = time.monotonic() + timeout
        while True:
            behind = []
            for name in names:
                active = self.active(name)
                at = active.position if active else 0
                if active is not None and active.status == "stopped" and at < position:
                    raise ProjectionStopped(
                        f"projection {name} is stopped at position {active.failed_position} "
                        f"({active.error}); it will not reach {position}"
                    )
                if at < position:
                    behind.append(f"{name} at {at}")
            if not behind:
                return
            if time.monotonic() >= deadline:
                raise Timeout(f"waited {timeout:g} s for position {position}: " + ", ".join(behind))
            time.sleep(0.002)

    def is_transient(self, error: BaseException) -> bool:
        """Whether an error of `apply` is the target's own trouble (connection lost, busy)
        rather than the event's: the runner then tries the batch again later instead of
        stopping the projection."""
        return False

    def drift(self, projection: Projection, generation: int) -> str | None:
        """Why the generation's storage no longer matches the projection (altered by hand),
        or None when it matches."""
        return None

    def close(self) -> None:  # noqa: B027 - most targets hold a connection; some hold nothing
        """Release connections. Idempotent."""
