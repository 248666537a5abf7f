"""How the suite gets stores: `StoreFactory` opens fresh ones; `PathStoreFactory` also
reopens a store from its path, for the durability tests."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import eventbook as eb


class StoreFactory:
    """Makes the stores the suite tests: `new()` gives a fresh, empty, open store.

    `reopenable` says whether `reopen(store)` can close a store and open the same data again;
    `memory://` cannot, so its factory is a plain `StoreFactory`. The suite closes every store
    a factory made (`close_all`) when a test ends.
    """

    reopenable: ClassVar[bool] = False

    def __init__(self, open_new: Callable[[], eb.EventStore]) -> None:
        self._open_new = open_new
        self._opened: list[eb.EventStore] = []

    def new(self) -> eb.EventStore:
        store = self._open_new()
        self._opened.append(store)
        return store

    def reopen(self, store: eb.EventStore) -> eb.EventStore:
        raise NotImplementedError(
            f"{type(self).__name__} cannot reopen a store; use PathStoreFactory (or another "
            "factory with reopenable = True) for stores that keep their data"
        )

    def close_all(self) -> None:
        while self._opened:
            self._opened.pop().close()


class PathStoreFactory(StoreFactory):
    """Stores in fresh directories under `base`, opened with `open_path(path)`;
    `reopen` closes a store and opens its path again."""

    reopenable: ClassVar[bool] = True

    def __init__(
        self,
        base: Path | str,
        open_path: Callable[[Path], eb.EventStore] = eb.open_store,
    ) -> None:
        super().__init__(self._open_fresh)
        self._base = Path(base)
        self._open_path = open_path
        self._paths: dict[int, Path] = {}  # id(store) -> path; _opened keeps the stores alive

    def _open_fresh(self) -> eb.EventStore:
        path = Path(tempfile.mkdtemp(prefix="store-", dir=self._base)) / "store"
        store = self._open_path(path)
        self._paths[id(store)] = path
        return store

    def reopen(self, store: eb.EventStore) -> eb.EventStore:
        path = self._paths.pop(id(store))
        store.close()
        again = self._open_path(path)
        self._opened.append(again)
        self._paths[id(again)] = path
        return again


class NamedStoreFactory(StoreFactory):
    """Stores that live under a name on a server (a PostgreSQL schema, a NATS stream):
    `new()` opens a fresh name with `open_named(name)`; `reopen` closes a store and opens its
    name again. `discard(name)`, when given, deletes each name's data after the test."""

    reopenable: ClassVar[bool] = True

    def __init__(
        self,
        open_named: Callable[[str], eb.EventStore],
        prefix: str = "t_",
        discard: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(self._open_fresh)
        self._open_named = open_named
        self._prefix = prefix
        self._discard = discard
        self._names: dict[int, str] = {}  # id(store) -> name
        self._used: list[str] = []

    def _open_fresh(self) -> eb.EventStore:
        name = f"{self._prefix}{uuid.uuid4().hex[:16]}"
        store = self._open_named(name)
        self._names[id(store)] = name
        self._used.append(name)
        return store

    def reopen(self, store: eb.EventStore) -> eb.EventStore:
        name = self._names.pop(id(store))
        store.close()
        again = self._open_named(name)
        self._opened.append(again)
        self._names[id(again)] = name
        return again

    def close_all(self) -> None:
        super().close_all()
        self._names.clear()
        while self._used and self._discard is not None:
            self._discard(self._used.pop())
