"""`eventbook report --plot` and `demo retail --plot`: the bitemporal picture is drawn to a
PNG or SVG file; its data are the seed's numbers; bad requests and a missing matplotlib are
refused with a message and exit 2, before anything is written."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

import eventbook as eb
from eventbook.cli.app import app as cli
from eventbook.examples import retail
from eventbook.temporal.picture import picture_of

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("plots")
    found = {}
    for story in ("retail", "retail-week"):
        found[story] = str(root / story)
        assert _run("--store", found[story], "demo", story, "--json")[0] == 0
    return found


def test_report_plot_draws_a_png_and_an_svg(stores: dict[str, str], tmp_path: Path) -> None:
    png, svg = tmp_path / "first.png", tmp_path / "week.svg"
    code, out = _run("--store", stores["retail"], "report", "--plot", str(png))
    assert code == 0, out
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000
    code, out = _run("--store", stores["retail-week"], "report", "--json", "--plot", str(svg))
    assert code == 0, out
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(list(root.iter())) > 200  # axes, lines, markers, text: not an empty page


def test_demo_retail_plot(tmp_path: Path) -> None:
    out = tmp_path / "demo.png"
    code, text = _run("--store", str(tmp_path / "s"), "demo", "retail", "--plot", str(out))
    assert code == 0, text
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_the_picture_holds_the_seeds_numbers(stores: dict[str, str]) -> None:
    with eb.open_store(stores["retail-week"]) as store, eb.Ledger(retail.books, store) as ledger:
        ledger.catch_up()
        pic = picture_of(ledger)
    monday = retail.WEEK[0]
    assert pic.periods == list(retail.WEEK[:3])
    assert pic.as_known_at == retail.WEEK_STORY[-1].at
    assert (pic.first[monday], pic.latest[monday], pic.sealed[monday]) == (
        1_000_000,
        4_550_000,
        4_500_000,
    )
    (correction,) = pic.corrections
    assert (correction.period, correction.old, correction.new) == (monday, 1_000_000, 4_500_000)
    assert correction.at == retail.WEEK_STORY[3].at  # issued when Thursday's upload came
    (adjustment,) = pic.adjustments
    assert (adjustment.old, adjustment.new, adjustment.into) == (
        4_500_000,
        4_550_000,
        retail.WEEK[5],
    )
    # Monday's figure as it was learned: 1,000,000 on Monday, 4,500,000 from Thursday
    assert [v for _, v in pic.growth[monday]] == [1_000_000, 4_500_000, 4_550_000]


def test_the_picture_as_known_at_an_earlier_time(stores: dict[str, str]) -> None:
    with eb.open_store(stores["retail"]) as store, eb.Ledger(retail.books, store) as ledger:
        ledger.catch_up()
        before_upload = picture_of(ledger, as_known_at=retail.taipei("2026-11-25", 1))
    assert before_upload.latest == {retail.DAY: 2200}
    assert before_upload.corrections == [] and before_upload.sealed == {}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--plot", "out.pdf"], "must end in .png or .svg"),
        (["--plot", "no/such/folder/out.png"], "is missing"),
        (["--plot", "out.png", "--view", "feed"], "--plot draws the report"),
        (["--plot", "out.png", "--axis", "recorded"], "--plot draws the report"),
        (["--plot", "out.png", "--period", "hour"], "the books' own periods"),
    ],
)
def test_bad_plot_requests_exit_2(
    stores: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args, says
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = _run("--store", stores["retail"], "report", *args)
    assert code == 2 and says in out, out
    assert not (tmp_path / "out.png").exists()


def test_without_matplotlib_plot_says_how_to_install_it(
    stores: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    out = tmp_path / "out.png"
    for args in (
        ["--store", stores["retail"], "report", "--plot", str(out)],
        ["--store", str(tmp_path / "new"), "demo", "retail", "--plot", str(out)],
    ):
        code, text = _run(*args)
        assert code == 2, text
        assert "pip install 'eventbook[plot]'" in text and "Traceback" not in text
    assert not out.exists() and not (tmp_path / "new").exists()  # refused before writing
