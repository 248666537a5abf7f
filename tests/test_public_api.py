"""The public API: `eventbook.__all__` is complete, every name in it exists, and the README's
Python quick start runs."""

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import eventbook
import eventbook.errors
import eventbook.testing


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def test_every_name_in_all_exists() -> None:
    missing = [name for name in eventbook.__all__ if not hasattr(eventbook, name)]
    assert missing == []


def test_all_names_every_public_name() -> None:
    assert _public_names(eventbook) == set(eventbook.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(eventbook.__all__) == len(set(eventbook.__all__))


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from eventbook import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(eventbook.__all__)
    for name, value in namespace.items():
        assert value is getattr(eventbook, name)


def test_every_error_is_exported() -> None:
    assert set(eventbook.errors.__all__) <= set(eventbook.__all__)
    for name in eventbook.errors.__all__:
        error = getattr(eventbook, name)
        assert issubclass(error, eventbook.EventbookError)


def test_testing_all_is_complete() -> None:
    assert _public_names(eventbook.testing) == set(eventbook.testing.__all__)


def test_testing_imports_no_backend() -> None:
    code = (
        "import sys, eventbook.testing\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('eventbook.backends'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _readme_python_blocks() -> list[str]:
    text = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_readme_python_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _readme_python_blocks()
    assert blocks, "the README has a Python quick start"
    monkeypatch.chdir(tmp_path)  # the quick start opens ./data
    spaces = []
    for block in blocks:
        namespace: dict[str, object] = {}
        exec(compile(block, "README.md", "exec"), namespace)
        spaces.append(namespace)
    engine_tour = next(n for n in spaces if "engine" in n)
    assert engine_tour["o"].rejection.code == "insufficient_funds"  # type: ignore[attr-defined]
    assert engine_tour["replica"].state_hash()  # type: ignore[attr-defined]
    namespace = spaces[0]
    result = namespace["r"]
    assert isinstance(result, eventbook.AppendResult)
    assert (result.first_position, result.last_position) == (1, 1)
    assert result.versions == {"account-1": 1}
