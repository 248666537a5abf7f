"""The layers of DESIGN.md, checked: imports point downward only, and the tree is ruff-clean.

cli/ http/                   edges: nothing imports them (but the cli starts the http server)
backends/*                   import the port (store/) and core/ only, never each other
store/ (the port)            imports core/ and the leaves; names backends only in registry
projections/ read_models/    the query side: import engine/, the port and core/, never a backend
sagas/                       process managers: import engine/, the port and core/, never a backend
engine/                      the command side: imports the port and core/, never a backend
outbox/                      publishing: the port, core/ and the query side, never a backend
temporal/                    bitemporal books: the port, core/, the engine and the query side
audit/                       who and why, re-decision, what-if: the engine, the port, core/
examples/                    the public API only (`import eventbook`)
core/                        imports nothing of eventbook but the leaves
errors.py limits.py          leaves
testing/                     never imports a backend
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "eventbook"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every eventbook module and the eventbook modules it imports (at any depth in the file)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
        found[_module_name(path)] = {n for n in names if n.split(".")[0] == "eventbook"}
    return found


IMPORTS = _imports()


def _violations(importer_prefix: str, allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for module, names in IMPORTS.items():
        if module == importer_prefix or module.startswith(importer_prefix + "."):
            for name in names:
                if not any(name == a or name.startswith(a + ".") for a in allowed):
                    bad.append(f"{module} imports {name}")
    return sorted(bad)


def test_the_walk_sees_the_package() -> None:
    assert "eventbook.backends.log.store" in IMPORTS
    assert "eventbook.store.commit.plan_commit" in IMPORTS["eventbook.backends.log.group_commit"]


def test_leaves_import_nothing_of_eventbook() -> None:
    assert _violations("eventbook.errors", ()) == []
    assert _violations("eventbook.limits", ()) == []


def test_core_imports_only_the_leaves() -> None:
    allowed = ("eventbook.core", "eventbook.errors", "eventbook.limits")
    assert _violations("eventbook.core", allowed) == []


def test_the_port_names_no_backend_but_in_the_registry() -> None:
    allowed = ("eventbook.store", "eventbook.core", "eventbook.errors", "eventbook.limits")
    bad = [
        v
        for v in _violations("eventbook.store", allowed)
        if not v.startswith("eventbook.store.registry imports eventbook.backends")
    ]
    assert bad == []


@pytest.mark.parametrize("backend", ["eventbook.backends.memory", "eventbook.backends.log"])
def test_a_backend_imports_the_port_and_the_core_only(backend: str) -> None:
    allowed = (backend, "eventbook.store", "eventbook.core", "eventbook.errors")
    allowed += ("eventbook.limits",)
    assert _violations(backend, allowed) == []


def test_testing_never_imports_a_backend() -> None:
    bad = [v for v in _violations("eventbook.testing", ("eventbook",)) if "backends" in v]
    assert bad == [v for v in bad if v.endswith("eventbook.backends.log.fileio")]  # fault layer


def test_the_command_side_imports_the_port_and_the_core_only() -> None:
    allowed = ("eventbook.engine", "eventbook.store", "eventbook.core", "eventbook.errors")
    allowed += ("eventbook.limits",)
    assert _violations("eventbook.engine", allowed) == []


@pytest.mark.parametrize("layer", ["eventbook.projections", "eventbook.read_models"])
def test_the_query_side_names_no_backend(layer: str) -> None:
    allowed = ("eventbook.projections", "eventbook.read_models", "eventbook.engine")
    allowed += ("eventbook.store", "eventbook.core", "eventbook.errors", "eventbook.limits")
    assert _violations(layer, allowed) == []


def test_the_outbox_names_no_backend() -> None:
    allowed = ("eventbook.outbox", "eventbook.projections", "eventbook.read_models")
    allowed += ("eventbook.store", "eventbook.core", "eventbook.errors", "eventbook.limits")
    assert "eventbook.outbox.relay" in IMPORTS
    assert _violations("eventbook.outbox", allowed) == []


def test_sagas_name_no_backend() -> None:
    allowed = ("eventbook.sagas", "eventbook.engine", "eventbook.store", "eventbook.core")
    allowed += ("eventbook.errors", "eventbook.limits")
    assert "eventbook.sagas.runner" in IMPORTS
    assert _violations("eventbook.sagas", allowed) == []


def test_the_temporal_books_name_no_backend() -> None:
    allowed = ("eventbook.temporal", "eventbook.projections", "eventbook.read_models")
    allowed += ("eventbook.engine", "eventbook.store", "eventbook.core", "eventbook.errors")
    allowed += ("eventbook.limits",)
    assert "eventbook.temporal.ledger" in IMPORTS
    assert _violations("eventbook.temporal", allowed) == []


def test_audit_names_no_backend_and_no_edge() -> None:
    allowed = ("eventbook.audit", "eventbook.engine", "eventbook.store", "eventbook.core")
    allowed += ("eventbook.errors", "eventbook.limits")
    assert "eventbook.audit.redecision" in IMPORTS
    assert _violations("eventbook.audit", allowed) == []


def test_examples_use_the_public_api_only() -> None:
    assert _violations("eventbook.examples", ("eventbook.examples", "eventbook")) == []
    for module, names in IMPORTS.items():
        if module.startswith("eventbook.examples"):
            assert names <= {"eventbook"} | {
                n for n in names if n.startswith("eventbook.examples")
            }, (
                module,
                names,
            )


def test_nothing_imports_the_cli() -> None:
    bad = [
        f"{m} imports {n}"
        for m, names in IMPORTS.items()
        if not m.startswith("eventbook.cli")
        for n in names
        if n.startswith("eventbook.cli")
    ]
    assert bad == []


def test_nothing_imports_http_but_the_cli() -> None:
    bad = [
        f"{m} imports {n}"
        for m, names in IMPORTS.items()
        if not m.startswith(("eventbook.http", "eventbook.cli"))
        for n in names
        if n.startswith("eventbook.http")
    ]
    assert "eventbook.http.routes" in IMPORTS
    assert bad == []
    assert not [n for n in IMPORTS["eventbook.http.app"] if n.startswith("eventbook.cli")]


def test_the_tree_is_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "--quiet", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
