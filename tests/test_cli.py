"""The `eventbook` command line: parsing, exit codes, output, and its documentation.

Three kinds of tests live here:

- tests that run now against nothing but the CLI: usage, input errors, memory:// stores;
- tests against a shared in-memory store or fake reports (monkeypatched into the registry),
  which check the output of every command without the embedded log;
- REAL tests against an embedded log in a tmp directory (marked `# REAL (log backend)`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
import typer
from typer.testing import CliRunner

import eventbook as eb
from eventbook.backends.memory import MemoryStore
from eventbook.cli.app import app
from eventbook.store import registry
from eventbook.store.reports import FrameInfo, Problem, RepairReport, VerifyReport

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "cli.md"
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
STORELESS = {"tokens"}  # commands that never open a store (the API tokens file)
EVENT_KEYS = [
    "position",
    "stream",
    "version",
    "type",
    "data",
    "metadata",
    "recorded_at",
    "occurred_at",
    "id",
    "schema_version",
    "commit_id",
]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient EVENTBOOK_STORE, and the default ./eventbook-data lands in tmp_path."""
    monkeypatch.delenv("EVENTBOOK_STORE", raising=False)
    monkeypatch.chdir(tmp_path)


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    result = CliRunner().invoke(app, list(args), env=env, input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug: show its traceback in the test report
    return result


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_user_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- usage and documentation ------------------------------------------------------------


def test_the_app_has_the_commands_of_the_issue() -> None:
    assert set(COMMANDS) >= {
        "append",
        "read",
        "log",
        "streams",
        "stats",
        "verify",
        "repair",
        "inspect",
        "tail",
    }


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    for sub in getattr(click_command, "commands", {}):  # a group: each of its commands
        sub_help = run(command, sub, "--help")
        assert sub_help.exit_code == 0, (command, sub)
        assert command in STORELESS or "--store" in sub_help.output, (command, sub)
    if not hasattr(click_command, "commands"):
        assert "--store" in result.output


def test_top_level_help_and_version() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "EVENTBOOK_STORE" in result.output
    result = run("--version")
    assert result.exit_code == 0
    assert eb.__version__ in result.output


def _doc_sections() -> dict[str, str]:
    """docs/cli.md split at its `## eventbook COMMAND` headings."""
    text = DOCS.read_text(encoding="utf-8")
    parts = re.split(r"^## eventbook (\S+)[ \t]*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_documented(command: str) -> None:
    sections = _doc_sections()
    assert command in sections, f"docs/cli.md needs a heading '## eventbook {command}'"
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    for param in click_command.params:
        for name in param.opts:
            if name.startswith("--") and name != "--help":
                assert name in sections[command], f"docs/cli.md: {command} does not mention {name}"


def test_docs_name_every_exit_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert "## Exit codes" in text
    for code in "0123":
        assert re.search(rf"^\|\s*{code}\s*\|", text, flags=re.MULTILINE), code


@pytest.mark.parametrize(
    "args",
    [
        ["append", "s-1", "T"],  # JSON missing
        ["append", "s-1", "T", "{}", "--no-such-option"],
        ["read"],
        ["no-such-command"],
        ["log", "--from", "-1"],
        ["tail", "--idle-timeout", "soon"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run("--store", "memory://", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


# --- invalid input: exit 2, a clear message, never a traceback -----------------------------


@pytest.mark.parametrize("text", ['{"amount": ', "amount=5", "{'a': 1}", ""])
def test_bad_json_exits_2(text: str) -> None:
    result = run("--store", "memory://", "append", "s-1", "T", text)
    assert_user_error(result, 2, "not valid JSON")


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number"), ("null", "null")],
)
def test_json_that_is_not_an_object_exits_2(text: str, kind: str) -> None:
    result = run("--store", "memory://", "append", "s-1", "T", text)
    assert_user_error(result, 2, "must be a JSON object", kind)


def test_bad_metadata_exits_2() -> None:
    result = run("--store", "memory://", "append", "s-1", "T", "{}", "--metadata", "[]")
    assert_user_error(result, 2, "--metadata must be a JSON object")


@pytest.mark.parametrize("text", ["maybe", "-1", "1.5", "no stream"])
def test_bad_expected_version_exits_2(text: str) -> None:
    result = run("--store", "memory://", "append", "s-1", "T", "{}", "--expected-version", text)
    assert_user_error(result, 2, "--expected-version", "no-stream")


@pytest.mark.parametrize("text", ["2024-05-01T12:00:00", "2024-05-01"])
def test_naive_occurred_at_exits_2(text: str) -> None:
    result = run("--store", "memory://", "append", "s-1", "T", "{}", "--occurred-at", text)
    assert_user_error(result, 2, "has no time zone", "Z", "+00:00")


def test_unparseable_occurred_at_exits_2() -> None:
    result = run("--store", "memory://", "append", "s-1", "T", "{}", "--occurred-at", "yesterday")
    assert_user_error(result, 2, "not an ISO 8601 time")


def test_invalid_stream_or_type_exits_2() -> None:
    result = run("--store", "memory://", "append", "$system", "T", "{}")
    assert_user_error(result, 2, "stream id")
    result = run("--store", "memory://", "append", "s-1", "not a type", "{}")
    assert_user_error(result, 2, "type 'not a type' is not allowed")


@pytest.mark.parametrize(
    "args",
    [
        ["append", "s-1", "T", "{}"],
        ["read", "s-1"],
        ["log"],
        ["streams"],
        ["stats"],
        ["tail", "--idle-timeout", "0"],
    ],
)
def test_unknown_url_scheme_exits_2(args: list[str]) -> None:
    result = run("--store", "gopher://example", *args)
    assert_user_error(result, 2, "gopher")


def test_inspect_on_a_memory_store_exits_2() -> None:
    assert_user_error(run("--store", "memory://", "inspect"), 2, "embedded log")


# --- memory:// works (uselessly, as it is private to one process) but never crashes --------


def test_memory_store_append_prints_position_and_version() -> None:
    result = run("--store", "memory://", "append", "account-1", "Deposited", '{"amount": 5}')
    assert result.exit_code == 0, result.output
    assert "position 1" in result.stdout
    assert "version 1" in result.stdout


def test_memory_store_append_json_is_one_line() -> None:
    result = run(
        "--store", "memory://", "append", "account-1", "Deposited", "{}", "--json", "-e", "0"
    )
    assert result.exit_code == 0, result.output
    [line] = json_lines(result.stdout)
    assert line["first_position"] == line["last_position"] == 1
    assert line["versions"] == {"account-1": 1}
    assert datetime.fromisoformat(line["recorded_at"]).tzinfo is not None


def test_append_reads_json_from_stdin() -> None:
    result = run(
        "--store", "memory://", "append", "s-1", "T", "-", "--json", input='{"from": "stdin"}'
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["read", "account-1"], 0),
        (["read", "account-1", "--json"], 0),
        (["log"], 0),
        (["log", "--json"], 0),
        (["streams"], 0),
        (["streams", "--json"], 0),
        (["stats"], 0),
        (["stats", "--json"], 0),
        (["tail", "--idle-timeout", "0.05"], 0),
        (["verify"], 0),
        (["verify", "--json"], 0),
        (["repair"], 0),
        (["repair", "--json"], 0),
    ],
)
def test_every_command_on_a_memory_store(args: list[str], code: int) -> None:
    result = run("--store", "memory://", *args)
    assert result.exit_code == code, result.output
    if "--json" in args:
        assert all(isinstance(obj, dict) for obj in json_lines(result.stdout))


# --- every command's output, against one in-memory store shared across invocations ---------


class KeptOpen(MemoryStore):
    """A memory store that outlives the CLI's `with store:` so several commands share it."""

    def __init__(self) -> None:
        super().__init__("memory://shared")
        self.opened: list[tuple[str, dict]] = []

    def close(self) -> None:
        pass


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> KeptOpen:
    store = KeptOpen()

    def fake_open(url: str | None = None, **options: object) -> KeptOpen:
        store.opened.append((str(url), options))
        return store

    monkeypatch.setattr(registry, "open_store", fake_open)
    return store


def fill(store: eb.EventStore) -> None:
    store.append([eb.NewEvent("account-1", "Opened", {"owner": "ada"})])
    store.append([eb.NewEvent("account-2", "Opened", {"owner": "bob"})])
    store.append([eb.NewEvent("account-1", "Deposited", {"amount": 5})])


def test_append_then_read_round_trip(shared: KeptOpen, tmp_path: Path) -> None:
    store = str(tmp_path / "data")
    occurred = "2024-05-01T12:00:00+02:00"
    for amount in (5, 7):
        result = run(
            "--store",
            store,
            "append",
            "account-1",
            "Deposited",
            json.dumps({"amount": amount}),
            "--occurred-at",
            occurred,
            "--metadata",
            '{"actor": "ada"}',
        )
        assert result.exit_code == 0, result.output
    result = run("--store", store, "read", "account-1", "--json")
    assert result.exit_code == 0, result.output
    events = json_lines(result.stdout)
    assert [list(e) for e in events] == [EVENT_KEYS, EVENT_KEYS]
    assert [e["data"]["amount"] for e in events] == [5, 7]
    assert [e["version"] for e in events] == [1, 2]
    assert events[0]["metadata"] == {"actor": "ada"}
    assert datetime.fromisoformat(events[0]["occurred_at"]) == datetime.fromisoformat(occurred)


def test_reads_open_read_only_and_append_does_not(shared: KeptOpen, tmp_path: Path) -> None:
    store = str(tmp_path / "data")
    run("--store", store, "append", "s-1", "T", "{}")
    for args in (["read", "s-1"], ["log"], ["streams"], ["stats"], ["tail", "--idle-timeout", "0"]):
        run("--store", store, *args)
    assert shared.opened[0][0] == store  # append: opened for writing (with a progress hook)
    assert set(shared.opened[0][1]) <= {"progress"}
    assert shared.opened[1:] == [(store, {"readonly": True})] * 5


def test_store_option_env_and_per_command(
    shared: KeptOpen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("streams")
    assert shared.opened[-1][0] == "./eventbook-data"
    run("streams", env={"EVENTBOOK_STORE": str(tmp_path / "env")})
    assert shared.opened[-1][0] == str(tmp_path / "env")
    run("--store", str(tmp_path / "global"), "streams", env={"EVENTBOOK_STORE": "x"})
    assert shared.opened[-1][0] == str(tmp_path / "global")
    run("--store", str(tmp_path / "global"), "streams", "--store", str(tmp_path / "mine"))
    assert shared.opened[-1][0] == str(tmp_path / "mine")


def test_read_forward_backward_from_version_and_limit(shared: KeptOpen) -> None:
    for amount in range(1, 6):
        shared.append([eb.NewEvent("account-1", "Deposited", {"amount": amount})])

    def versions(*args: str) -> list[int]:
        result = run("--store", "x", "read", "account-1", "--json", *args)
        assert result.exit_code == 0, result.output
        return [e["version"] for e in json_lines(result.stdout)]

    assert versions() == [1, 2, 3, 4, 5]
    assert versions("--backward") == [5, 4, 3, 2, 1]
    assert versions("--from-version", "3") == [3, 4, 5]
    assert versions("--backward", "--from-version", "3", "--limit", "2") == [3, 2]
    assert versions("-n", "0") == []


def test_read_human_table(shared: KeptOpen) -> None:
    fill(shared)
    result = run("--store", "x", "read", "account-1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["position", "version", "type", "data"]
    assert "Opened" in lines[2] and '{"owner":"ada"}' in lines[2]
    assert "Deposited" in lines[3] and '{"amount":5}' in lines[3]


def test_read_of_an_empty_stream_says_so(shared: KeptOpen) -> None:
    result = run("--store", "x", "read", "nobody")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no events in stream 'nobody'" in result.stderr


def test_wide_tables_show_both_times(shared: KeptOpen) -> None:
    shared.append([eb.NewEvent("s-1", "T", {}, occurred_at=datetime(2024, 5, 1, 12, tzinfo=UTC))])
    result = run("--store", "x", "log", env={"COLUMNS": "160"})
    assert "occurred at" in result.stdout and "recorded at" in result.stdout
    assert "2024-05-01T12:00:00Z" in result.stdout


def test_log_from_position(shared: KeptOpen) -> None:
    fill(shared)
    result = run("--store", "x", "log", "--from", "1", "--json")
    assert [e["position"] for e in json_lines(result.stdout)] == [2, 3]
    result = run("--store", "x", "log", "--after", "2", "--limit", "5", "--json")
    assert [e["position"] for e in json_lines(result.stdout)] == [3]
    result = run("--store", "x", "log")
    assert "account-2" in result.stdout


def test_a_long_log_is_one_table_printed_in_chunks(shared: KeptOpen) -> None:
    shared.append([eb.NewEvent(f"s-{i % 7}", "T", {"i": i}) for i in range(450)])
    result = run("--store", "x", "log")
    lines = result.stdout.splitlines()
    assert sum(line.lstrip().startswith("position") for line in lines) == 1  # one header
    assert len(lines) == 2 + 450
    assert len({line.index('{"i":') for line in lines[2:]}) == 1  # the chunks line up


def test_errors_while_streaming_keep_what_was_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeptOpen()
    fill(store)

    def broken_read_all(*, after: int = 0, limit: int | None = None) -> Iterator[eb.RecordedEvent]:
        yield from MemoryStore.read_all(store, after=after, limit=limit)
        raise eb.StoreCorrupted("/data/segment-1", 4096, "checksum mismatch")

    monkeypatch.setattr(store, "read_all", broken_read_all)
    monkeypatch.setattr(registry, "open_store", lambda url=None, **options: store)
    result = run("--store", "x", "log", "--json")
    assert_user_error(result, 3, "checksum mismatch", "offset 4096")
    assert len(json_lines(result.stdout)) == 3  # printed as read, before the damage


def test_streams_table_and_json(shared: KeptOpen) -> None:
    fill(shared)
    result = run("--store", "x", "streams", "--json")
    assert json_lines(result.stdout) == [
        {"stream": "account-1", "version": 2, "last_position": 3},
        {"stream": "account-2", "version": 1, "last_position": 2},
    ]
    result = run("--store", "x", "streams")
    assert result.stdout.splitlines()[2].split() == ["account-1", "2", "3"]


def test_stats_table_and_json(shared: KeptOpen) -> None:
    fill(shared)
    [stats] = json_lines(run("--store", "x", "stats", "--json").stdout)
    assert stats["head_position"] == 3
    assert "head_position" in run("--store", "x", "stats").stdout


def test_wrong_expected_version_exits_1(shared: KeptOpen) -> None:
    fill(shared)
    result = run("--store", "x", "append", "account-1", "Deposited", "{}", "-e", "no-stream")
    assert_user_error(result, 1, "account-1", "version 2")
    result = run("--store", "x", "append", "account-1", "Deposited", "{}", "-e", "2")
    assert result.exit_code == 0, result.output
    result = run("--store", "x", "append", "account-9", "Deposited", "{}", "-e", "exists")
    assert_user_error(result, 1, "account-9")


def test_commit_id_is_idempotent_and_reuse_is_a_conflict(shared: KeptOpen) -> None:
    args = ["--store", "x", "append", "s-1", "T", '{"a": 1}', "--commit-id", "c-1", "--json"]
    first = json_lines(run(*args).stdout)
    again = json_lines(run(*args).stdout)
    assert first == again
    assert shared.head_position() == 1
    result = run("--store", "x", "append", "s-1", "T", '{"a": 2}', "--commit-id", "c-1")
    assert_user_error(result, 1, "c-1", "already used")


def test_store_errors_exit_with_their_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def locked(url: str | None = None, **options: object) -> eb.EventStore:
        raise eb.StoreLocked("/data", 4242)

    monkeypatch.setattr(registry, "open_store", locked)
    result = run("--store", "x", "append", "s-1", "T", "{}")
    assert_user_error(result, 3, "process 4242")


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(url: str | None = None, **options: object) -> eb.EventStore:
        raise RuntimeError("a bug")

    monkeypatch.setattr(registry, "open_store", broken)
    result = CliRunner().invoke(app, ["--store", "x", "streams"])
    assert isinstance(result.exception, RuntimeError)  # not swallowed into an exit code


def test_tail_from_position_with_idle_timeout(shared: KeptOpen) -> None:
    fill(shared)
    result = run("--store", "x", "tail", "--from", "1", "--idle-timeout", "0.05", "--json")
    assert result.exit_code == 0, result.output
    assert [e["position"] for e in json_lines(result.stdout)] == [2, 3]


def test_tail_by_default_shows_only_new_events(
    shared: KeptOpen, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(shared)
    head_read = threading.Event()
    head_position = shared.head_position

    def head_then_signal() -> int:
        head = head_position()
        head_read.set()
        return head

    monkeypatch.setattr(shared, "head_position", head_then_signal)

    def append_once_tail_started() -> None:
        assert head_read.wait(30)
        shared.append([eb.NewEvent("account-3", "Opened", {"owner": "cy"})])

    writer = threading.Thread(target=append_once_tail_started)
    writer.start()
    result = run("--store", "x", "tail", "--idle-timeout", "2", "--json")
    writer.join()
    assert result.exit_code == 0, result.output
    assert [e["stream"] for e in json_lines(result.stdout)] == ["account-3"]


def test_tail_human_output(shared: KeptOpen) -> None:
    fill(shared)
    result = run("--store", "x", "tail", "--from", "2", "--idle-timeout", "0.05")
    assert result.exit_code == 0, result.output
    assert "following" in result.stderr
    assert "account-1" in result.stdout and "Deposited" in result.stdout


def test_json_lines_are_msgspec_decodable(shared: KeptOpen) -> None:
    fill(shared)
    for line in run("--store", "x", "log", "--json").stdout.splitlines():
        event = msgspec.json.decode(line)
        assert list(event) == EVENT_KEYS


# --- verify, repair, inspect against fake reports (the contract of store.registry) --------


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> dict:
    seen: dict = {"verify": VerifyReport("/data", 10, 4, 10), "progress": []}

    def fake_verify(url: str | None = None, progress=None) -> VerifyReport:
        seen["verify_url"] = url
        for done in (1, 2):
            if progress is not None:
                progress(done, 2)
                seen["progress"].append(done)
        return seen["verify"]

    def fake_repair(url: str | None = None) -> RepairReport:
        return RepairReport(
            str(url), 9, ["quarantine/segment-1.1"], 37, ["position index", "stream index"]
        )

    def fake_inspect(url: str | None = None, segment: int | None = None) -> Iterator[FrameInfo]:
        seen["segment"] = segment
        for i in range(3):
            yield FrameInfo(
                "segment-1", 64 + 40 * i, 40, i + 1, 1, 1, 0, f"s-{i}", "T", seen.get("crc", True)
            )

    monkeypatch.setattr(registry, "verify_store", fake_verify)
    monkeypatch.setattr(registry, "repair_store", fake_repair)
    monkeypatch.setattr(registry, "inspect_store", fake_inspect)
    return seen


def test_verify_ok_exits_0(reports: dict) -> None:
    result = run("--store", "/data", "verify")
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout and "10 events" in result.stdout
    assert reports["verify_url"] == "/data"
    assert reports["progress"] == [1, 2]  # the progress callback was given and works


def test_verify_problems_exit_3_naming_file_and_offset(reports: dict) -> None:
    reports["verify"] = VerifyReport(
        "/data",
        5,
        2,
        5,
        [Problem("checksum mismatch", "/data/segment-1", 4096, 6), Problem("index gap")],
    )
    result = run("--store", "/data", "verify")
    assert result.exit_code == 3
    assert "/data/segment-1 at byte offset 4096 (position 6): checksum mismatch" in result.stdout
    assert "index gap" in result.stdout
    [report] = json_lines(run("--store", "/data", "verify", "--json").stdout)
    assert report["ok"] is False
    assert report["problems"][0] == {
        "what": "checksum mismatch",
        "path": "/data/segment-1",
        "offset": 4096,
        "position": 6,
    }


def test_repair_prints_what_moved(reports: dict) -> None:
    result = run("--store", "/data", "repair")
    assert result.exit_code == 0, result.output
    assert "quarantine/segment-1.1" in result.stdout and "37" in result.stdout
    [report] = json_lines(run("--store", "/data", "repair", "--json").stdout)
    assert report["bytes_moved"] == 37


def test_inspect_lists_frames(reports: dict) -> None:
    result = run("--store", "/data", "inspect", "--segment", "1", env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert reports["segment"] == 1
    assert result.stdout.count("segment-1") == 3
    frames = json_lines(run("--store", "/data", "inspect", "--json").stdout)
    assert reports["segment"] is None
    assert [f["offset"] for f in frames] == [64, 104, 144]
    assert set(frames[0]) == set(FrameInfo.__struct_fields__)


def test_inspect_bad_checksum_exits_3(reports: dict) -> None:
    reports["crc"] = False
    result = run("--store", "/data", "inspect", env={"COLUMNS": "160"})
    assert result.exit_code == 3
    assert "BAD" in result.stdout
    assert "checksum" in result.stderr


# --- the installed script, in real processes ------------------------------------------------


def script() -> list[str]:
    """The `eventbook` console script installed beside this interpreter."""
    path = Path(sysconfig.get_path("scripts")) / (
        "eventbook.exe" if os.name == "nt" else "eventbook"
    )
    assert path.exists(), f"{path} is missing: pip install -e '.[test]' installs it"
    return [str(path)]


def run_script(
    *args: str, store: str = "memory://", timeout: float = 60
) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVENTBOOK_STORE": store, "COLUMNS": "160"}
    return subprocess.run(
        [*script(), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_script_help_and_user_error() -> None:
    done = run_script("--help")
    assert done.returncode == 0
    assert "append" in done.stdout
    done = run_script("append", "s-1", "T", "[1]")
    assert done.returncode == 2
    assert "must be a JSON object" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    module = subprocess.run(
        [sys.executable, "-m", "eventbook.cli", "--version"], capture_output=True, text=True
    )
    assert module.returncode == 0 and eb.__version__ in module.stdout


def test_script_tail_ends_quietly_on_ctrl_c() -> None:
    env = {**os.environ, "EVENTBOOK_STORE": "memory://"}
    process = subprocess.Popen(
        [*script(), "tail"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stderr is not None
        assert "following" in process.stderr.readline()  # started and waiting for events
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err


# --- REAL tests (log backend): they run against an embedded log in tmp_path -----------------


def test_real_round_trip_on_a_path_store(tmp_path: Path) -> None:  # REAL (log backend)
    store = str(tmp_path / "data")
    for stream, kind, data, expected in [
        ("account-1", "Opened", '{"owner": "ada"}', "no-stream"),
        ("account-2", "Opened", '{"owner": "bob"}', "no-stream"),
        ("account-1", "Deposited", '{"amount": 5}', "1"),
    ]:
        result = run("--store", store, "append", stream, kind, data, "-e", expected, "--json")
        assert result.exit_code == 0, result.output
    result = run("--store", store, "read", "account-1", "--json")
    events = json_lines(result.stdout)
    assert [(e["position"], e["version"], e["type"]) for e in events] == [
        (1, 1, "Opened"),
        (3, 2, "Deposited"),
    ]
    assert [list(e) for e in events] == [EVENT_KEYS] * 2
    result = run("--store", store, "read", "account-1", "--backward", "--json")
    assert [e["version"] for e in json_lines(result.stdout)] == [2, 1]
    result = run("--store", store, "log", "--from", "1", "--json")
    assert [e["position"] for e in json_lines(result.stdout)] == [2, 3]
    result = run("--store", store, "streams", "--json")
    assert json_lines(result.stdout) == [
        {"stream": "account-1", "version": 2, "last_position": 3},
        {"stream": "account-2", "version": 1, "last_position": 2},
    ]
    [stats] = json_lines(run("--store", store, "stats", "--json").stdout)
    assert stats["head_position"] == 3
    for args in (["read", "account-1"], ["log"], ["streams"], ["stats"]):
        result = run("--store", store, *args)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip()


def test_real_occurred_at_is_kept(tmp_path: Path) -> None:  # REAL (log backend)
    store = str(tmp_path / "data")
    when = "2024-05-01T12:00:00+02:00"
    run("--store", store, "append", "s-1", "T", "{}", "--occurred-at", when)
    [event] = json_lines(run("--store", store, "read", "s-1", "--json").stdout)
    assert datetime.fromisoformat(event["occurred_at"]) == datetime(
        2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))
    )


def test_real_conflict_exits_1(tmp_path: Path) -> None:  # REAL (log backend)
    store = str(tmp_path / "data")
    assert run("--store", store, "append", "s-1", "T", "{}").exit_code == 0
    result = run("--store", store, "append", "s-1", "T", "{}", "--expected-version", "no-stream")
    assert_user_error(result, 1, "s-1")


def test_real_reads_work_while_another_process_writes(tmp_path: Path) -> None:  # REAL
    path = tmp_path / "data"
    with eb.open_store(str(path)) as writer:  # this test process holds the writer lock
        writer.append([eb.NewEvent("s-1", "T", {"n": 1})])
        done = run_script("read", "s-1", "--json", store=str(path))
        assert done.returncode == 0, done.stderr
        assert [e["data"] for e in json_lines(done.stdout)] == [{"n": 1}]
        done = run_script("streams", "--json", store=str(path))
        assert done.returncode == 0, done.stderr
        # A second writer is refused: exit 3, the lock named, no traceback.
        done = run_script("append", "s-1", "T", "{}", store=str(path))
        assert done.returncode == 3, done.stderr
        assert "Traceback" not in done.stderr


def test_real_script_round_trip_and_tail(tmp_path: Path) -> None:  # REAL (log backend)
    store = str(tmp_path / "data")
    done = run_script("append", "s-1", "T", '{"n": 1}', store=store)
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "EVENTBOOK_STORE": store}
    follower = subprocess.Popen(
        [*script(), "tail", "--from", "1", "--json", "--idle-timeout", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        time.sleep(1.0)  # most likely following live by now (else it catches up: same output)
        done = run_script("append", "s-1", "T", '{"n": 2}', store=store)
        assert done.returncode == 0, done.stderr
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert (first["position"], first["data"]) == (2, {"n": 2})
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err


def test_real_verify_inspect_repair(tmp_path: Path) -> None:  # REAL (log backend)
    store = str(tmp_path / "data")
    for n in range(3):
        assert run("--store", store, "append", "s-1", "T", json.dumps({"n": n})).exit_code == 0
    result = run("--store", store, "verify")
    assert result.exit_code == 0, result.output
    frames = json_lines(run("--store", store, "inspect", "--json").stdout)
    assert [f["position"] for f in frames] == [1, 2, 3]
    assert all(f["crc_ok"] for f in frames)

    # Flip a byte inside the second record: verify names the file and offset, exit 3.
    frame = frames[1]
    segment = Path(frame["segment"])
    if not segment.is_absolute():
        segment = next(p for p in Path(store).rglob(segment.name) if p.is_file())
    with open(segment, "r+b") as file:
        file.seek(frame["offset"] + frame["length"] - 1)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))
    result = run("--store", store, "verify")
    assert result.exit_code == 3, result.output
    assert segment.name in result.stdout and "offset" in result.stdout
    assert "Traceback" not in result.output
    [report] = json_lines(run("--store", store, "verify", "--json").stdout)
    assert report["ok"] is False and report["problems"]

    result = run("--store", store, "repair", "--json")
    assert result.exit_code == 0, result.output
    [repaired] = json_lines(result.stdout)
    assert repaired["bytes_moved"] > 0 and repaired["quarantined"]
    assert run("--store", store, "verify").exit_code == 0


def test_demo_runs_twice_and_writes_once(tmp_path: Path) -> None:  # REAL (log backend)
    store = str(tmp_path / "tour")
    first = CliRunner().invoke(app, ["--store", store, "demo"])
    assert first.exit_code == 0, first.output
    text = " ".join(first.output.split())
    assert "passbook of account-ada" in text
    assert "rejected: insufficient_funds" in text
    assert "account-ada at version 2 had balance 100" in text
    assert "started from the snapshot at version 4" in text
    again = CliRunner().invoke(app, ["--store", store, "demo"])
    assert again.exit_code == 0, again.output
    assert " ".join(again.output.split()) == text, "a second run writes nothing new"
    with eb.open_store(store, readonly=True) as book:
        assert book.head_position() == 8
        amounts = [e.data.get("amount") for e in book.read_stream("account-ada")]
        assert amounts == [None, 100, 30, 50, 25]
        assert [e.data["code"] for e in book.read_stream("$rejected-account-ada")] == [
            "insufficient_funds"
        ]


def test_demo_without_a_store_runs_in_a_fresh_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # REAL (log backend)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTBOOK_STORE", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    for _ in range(2):
        result = CliRunner().invoke(app, ["demo"])
        assert result.exit_code == 0, result.output
        assert "ada opens an account: accepted" in result.output
    made = sorted(p.name for p in tmp_path.iterdir())
    assert len([m for m in made if m.startswith("eventbook-demo-")]) == 2, made
    assert "eventbook-data" not in made


def test_append_after_a_lost_index_rebuilds_with_progress(  # REAL (log backend)
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventbook.cli import stores

    store = tmp_path / "data"
    with eb.open_store(store) as book:
        for i in range(30):
            book.append([eb.NewEvent("account-1", "Deposited", {"amount": i})])
    (store / "index" / "positions.idx").unlink()
    calls: list[int] = []
    real_call = stores._RecoveryProgress.__call__

    def spy(self: stores._RecoveryProgress, done: int) -> None:
        calls.append(done)
        real_call(self, done)

    monkeypatch.setattr(stores._RecoveryProgress, "recovery_quiet_events", 5)
    monkeypatch.setattr(stores._RecoveryProgress, "__call__", spy)
    result = CliRunner().invoke(app, ["--store", str(store), "append", "account-1", "X", "{}"])
    assert result.exit_code == 0, result.output
    assert "position 31" in result.output
    assert max(calls) == 30  # the rebuild reported its progress, up to the whole log
