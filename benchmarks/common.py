"""What every benchmark shares: the scratch directory, timing, RSS, progress and output.

Benchmarks are run as scripts (`python benchmarks/bench_append.py`), so this module is imported
as `common`. Human output (progress, notes) goes to stderr; the table and the final JSON line go
to stdout, so `... | tail -n 1` is the JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
WORK_TREE = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
MEMORY_URL = "memory://"

err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)


# -- command line -------------------------------------------------------------------------------


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--dir",
        type=Path,
        default=os.environ.get("EVENTBOOK_BENCH_DIR"),
        help="scratch directory for every store, database and file of the run; it must be on "
        "the disk you mean to measure (default: $EVENTBOOK_BENCH_DIR or benchmarks/results/)",
    )
    parser.add_argument(
        "--store-url",
        default=None,
        help="run eventbook on this store URL instead of an embedded log under --dir; only "
        f"{MEMORY_URL} is accepted (a check of the harness, not a measurement)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small run (CI): seconds, not minutes"
    )
    parser.add_argument("--seed", type=int, default=20261124, help="seed of every random choice")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--json-out",
        type=Path,
        default=None,
        help="also write the final JSON object to this file (default: benchmarks/results/)",
    )
    return parser


def check_store_url(parser: argparse.ArgumentParser, url: str | None) -> None:
    if url is not None and url != MEMORY_URL:
        parser.error(
            f"--store-url {url!r} is not supported: give {MEMORY_URL} to check the harness, or "
            "leave it out to measure the embedded log under --dir"
        )


# -- scratch directory on the measured disk ------------------------------------------------------


@dataclass
class Scratch:
    """A fresh directory for one run, on the same filesystem as the work tree unless told."""

    root: Path
    same_filesystem: bool
    keep: bool = False

    @classmethod
    def create(cls, parent: Path | None, name: str, keep: bool) -> Scratch:
        parent = (parent or RESULTS_DIR).resolve()
        parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        root = parent / f"{name}-{stamp}-{os.getpid()}"
        root.mkdir()
        same = os.stat(root).st_dev == os.stat(WORK_TREE).st_dev
        if not same:
            err.print(
                f"[yellow]note:[/] {root} is not on the filesystem of the work tree "
                f"({WORK_TREE}); every engine of this run still shares it"
            )
        return cls(root, same, keep)

    def path(self, name: str) -> Path:
        return self.root / name

    def remove(self, name: str) -> None:
        target = self.root / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            for sibling in self.root.glob(f"{target.name}*"):  # SQLite's -wal and -shm too
                sibling.unlink()

    def close(self) -> None:
        if self.keep:
            err.print(f"kept scratch directory {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        usage = psutil.disk_usage(str(self.root))
        device = _mount_of(self.root)
        return {
            "dir": str(self.root),
            "same_filesystem_as_work_tree": self.same_filesystem,
            "device": device,
            "disk_free_gb": round(usage.free / 1e9, 1),
        }


def _mount_of(path: Path) -> str:
    best = ""
    device = "?"
    for part in psutil.disk_partitions(all=True):
        if str(path).startswith(part.mountpoint) and len(part.mountpoint) > len(best):
            best, device = part.mountpoint, f"{part.device} on {part.mountpoint} ({part.fstype})"
    return device


# -- timing ------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def median(values: Sequence[float]) -> float:
    return percentile(sorted(values), 0.5)


@dataclass
class Timing:
    """Latencies (seconds) of single operations and the wall time around all of them."""

    latencies: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0

    def merge(self, other: Timing) -> None:
        self.latencies.extend(other.latencies)
        self.wall_seconds += other.wall_seconds

    def quantile_ms(self, q: float) -> float:
        return percentile(sorted(self.latencies), q) * 1000.0


def ratio(numerator: float, denominator: float) -> float | None:
    if not denominator or numerator != numerator or denominator != denominator:
        return None
    return round(numerator / denominator, 3)


# -- memory --------------------------------------------------------------------------------------


def _rss_bytes(process: psutil.Process) -> tuple[int, int]:
    info = process.memory_info()
    return info.rss, info.rss - getattr(info, "shared", 0)  # (resident, resident anonymous)


def _maxrss_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


class PeakRss:
    """Peak RSS growth over a block, from a baseline taken at entry.

    A thread samples RSS every `interval` seconds; `ru_maxrss` (the kernel's high-water mark)
    catches what falls between samples whenever the block raises it.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self._interval = interval
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.baseline_rss = self.peak_rss = self.baseline_anon = self.peak_anon = 0
        self._maxrss_before = 0

    def __enter__(self) -> PeakRss:
        self.baseline_rss, self.baseline_anon = _rss_bytes(self._process)
        self.peak_rss, self.peak_anon = self.baseline_rss, self.baseline_anon
        self._maxrss_before = _maxrss_bytes()
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self._record()

    def _record(self) -> None:
        rss, anon = _rss_bytes(self._process)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_anon = max(self.peak_anon, anon)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._record()
        maxrss_after = _maxrss_bytes()
        if maxrss_after > self._maxrss_before:  # the high-water mark moved inside the block
            self.peak_rss = max(self.peak_rss, maxrss_after)

    def report(self) -> dict[str, float]:
        mb = 1024 * 1024
        return {
            "baseline_rss_mb": round(self.baseline_rss / mb, 1),
            "peak_rss_growth_mb": round((self.peak_rss - self.baseline_rss) / mb, 1),
            "peak_anon_growth_mb": round((self.peak_anon - self.baseline_anon) / mb, 1),
        }


# -- progress ------------------------------------------------------------------------------------


class Steps:
    """A rich progress bar that redraws only between measured blocks, never from a thread of its
    own while something is being timed (a refresh thread would compete for the GIL)."""

    def __init__(self, refresh_seconds: float = 0.1) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            auto_refresh=False,
            transient=False,
        )
        self._refresh_seconds = refresh_seconds
        self._last_refresh = 0.0

    def __enter__(self) -> Steps:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.refresh()
        self._progress.stop()

    def task(self, description: str, total: int) -> Any:
        task_id = self._progress.add_task(description, total=total)
        self._progress.refresh()
        return task_id

    def advance(self, task_id: Any, amount: int = 1, *, force: bool = False) -> None:
        self._progress.advance(task_id, amount)
        now = time.monotonic()
        if force or now - self._last_refresh >= self._refresh_seconds:
            self._last_refresh = now
            self._progress.refresh()

    def note(self, message: str) -> None:
        self._progress.console.print(message)
        self._progress.refresh()


@contextmanager
def steps() -> Iterator[Steps]:
    with Steps() as s:
        yield s


# -- output --------------------------------------------------------------------------------------


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 2
) -> None:
    """A table whose first `text_columns` columns are text (left) and the rest figures."""
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < text_columns else "right")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def print_notes(lines: Sequence[str]) -> None:
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)


def emit_json(result: dict[str, Any], name: str, json_out: Path | None) -> None:
    """The final line of stdout: one JSON object. A copy goes to benchmarks/results/."""
    line = json.dumps(result, sort_keys=False, separators=(",", ":"))
    target = json_out or RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    err.print(f"JSON written to {target}")
    sys.stdout.flush()
    print(line, flush=True)


def environment() -> dict[str, Any]:
    import eventbook

    return {
        "eventbook_source": _source_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "eventbook": eventbook.__version__,
    }


def _source_revision() -> str:
    """The commit measured, and the tracked files of src/ that differed from it at the time."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=WORK_TREE, capture_output=True, text=True, check=True
        )
        return done.stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git work tree)"
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    return f"{head} + uncommitted changes to {', '.join(changed)}" if changed else head


def fmt_rate(value: float) -> str:
    return "-" if value != value else f"{value:,.0f}"


def fmt_ms(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"


def fmt_duration(seconds: float) -> str:
    """A short duration in the unit that keeps three significant figures readable."""
    if seconds != seconds:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def verdict(value: float | None, target: float, *, at_most: bool = False) -> dict[str, Any]:
    """A target as JSON: the value, the bound and whether it was met."""
    met = None if value is None else (value <= target if at_most else value >= target)
    return {"value": value, ("max" if at_most else "min"): target, "met": met}


# -- a second process serving the HTTP API -------------------------------------------------------


@contextmanager
def eventbook_server(store: Path, app: str, port: int, *options: str) -> Iterator[str]:
    """`eventbook serve` in a second process on a free loopback port; yields its base URL
    once /health answers, and stops it afterwards."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventbook.cli",
            "--store",
            str(store),
            "serve",
            "--app",
            app,
            "--port",
            str(port),
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise SystemExit(server.stderr.read().decode() if server.stderr else "died")
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        server.terminate()
        server.wait(10)
