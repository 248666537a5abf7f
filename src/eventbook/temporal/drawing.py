"""Drawing a books `Picture` with matplotlib (the optional extra: pip install 'eventbook[plot]').

Two panels, one picture (PNG or SVG, by the file's suffix; the Agg backend, no display):

1. *By the day it happened*: occurrence periods across; a series per revision: the figure as
   known at the period's end (the daily report) and as known at S (every event, late ones
   too); the sealed figures; each correction an arrow from the old value to the new one.
2. *As it was learned*: knowledge time across (in the calendar's zone); each period's figure
   as a step series that rises as its events arrive, with its publication, its corrections,
   its close (sealed) and, dashed, what arrived after the close (adjustments).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from eventbook.errors import InvalidInput
from eventbook.temporal.picture import Picture

FORMATS = (".png", ".svg")
LINES_MAX = 10  # periods drawn as their own line in the second panel
INSTALL = "pip install 'eventbook[plot]'"
_RED, _PURPLE, _GREY = "#c0392b", "#7d3c98", "#555555"


def check_plot_path(path: str | Path) -> Path:
    """The file to draw to: a .png or .svg in an existing folder, with matplotlib installed
    (`InvalidInput` otherwise, saying what to do)."""
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise InvalidInput(
            f"--plot {str(path)!r}: the file must end in .png or .svg (the picture's format)"
        )
    if not target.parent.is_dir():
        raise InvalidInput(f"--plot {str(path)!r}: the folder {str(target.parent)!r} is missing")
    _pyplot()
    return target


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never a window
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise InvalidInput(
            f"drawing needs matplotlib ({exc.name or 'matplotlib'} is missing): {INSTALL}"
        ) from None
    return plt


def draw(picture: Picture, path: str | Path) -> Path:
    """Draw `picture` to `path` (.png or .svg); returns the path."""
    target = check_plot_path(path)
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(13, 9), gridspec_kw={"height_ratios": [1, 1.15], "hspace": 0.45}
    )
    try:
        known = picture.as_known_at.astimezone(ZoneInfo(picture.tz))
        fig.suptitle(
            f"{picture.measure}: when it happened, and when we knew it "
            f"(as known at {known:%Y-%m-%d %H:%M} {picture.tz})",
            fontsize=13,
            fontweight="bold",
        )
        money = FuncFormatter(lambda v, _pos: f"{v:,.0f}")
        for ax in (top, bottom):
            ax.yaxis.set_major_formatter(money)
            ax.grid(True, color="#dddddd", linewidth=0.6)
            ax.set_axisbelow(True)
        if not picture.periods:
            top.text(0.5, 0.5, "nothing recorded yet", ha="center", transform=top.transAxes)
        else:
            _by_occurrence(top, picture)
            _by_knowledge(bottom, picture)
        fig.savefig(target, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return target


_FIRST = {"color": "#85c1e9", "marker": "o", "ls": "--", "markersize": 8, "lw": 1.2}
_LATEST = {"color": "#1a5276", "marker": "o", "ls": "-", "markersize": 5, "lw": 1.8}
_SEALED = {"marker": "s", "ls": "none", "markersize": 13, "markerfacecolor": "none"}
_SEALED |= {"markeredgecolor": "black", "markeredgewidth": 1.5}


def _by_occurrence(ax: Any, pic: Picture) -> None:
    index = {p: i for i, p in enumerate(pic.periods)}
    first = [(index[p], v) for p, v in pic.first.items()]
    if first:
        ax.plot(
            *zip(*first, strict=True),
            **_FIRST,
            zorder=3,
            label="as known at the end of its day (the daily report)",
        )
    ax.plot(
        list(index.values()),
        [pic.latest.get(p, 0) for p in pic.periods],
        **_LATEST,
        zorder=4,
        label=f"as known at {_local(pic.as_known_at, pic.tz)}: every event, late ones too",
    )
    sealed = [(index[p], v) for p, v in pic.sealed.items()]
    if sealed:
        ax.plot(*zip(*sealed, strict=True), **_SEALED, zorder=5, label="sealed at close")
    _changes_by_occurrence(ax, pic, index)
    ax.plot(
        [],
        [],
        color=_RED,
        marker=r"$\uparrow$",
        ls="none",
        markersize=10,
        label="correction notice: old -> new",
    )
    if pic.adjustments:
        ax.plot(
            [],
            [],
            color=_PURPLE,
            marker=r"$\uparrow$",
            ls="none",
            markersize=10,
            label="adjustment (after close)",
        )
    _period_ticks(ax, pic)
    ax.set_xlim(-0.7, len(index) - 0.3)
    ax.set_ylim(bottom=0, top=max(_values(pic)) * 1.3 or 1)
    ax.set_title("1  By the day it happened, as known at successive times", loc="left")
    ax.set_xlabel(f"the day it happened (business day in {pic.tz})")
    ax.set_ylabel(f"{pic.measure} ({pic.value_name})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8.5, framealpha=0.9)


def _changes_by_occurrence(ax: Any, pic: Picture, index: dict[str, int]) -> None:
    """Corrections (red) and adjustments (purple) as arrows from old to new, annotated."""
    seen: dict[str, int] = {}
    for c in pic.corrections:
        k = seen[c.period] = seen.get(c.period, -1) + 1
        x = index[c.period] + 0.12 * (k + 1)
        _arrow(ax, x, c.old, c.new, _RED)
        ax.annotate(
            f"correction {c.new - c.old:+,}\nissued {_local(c.at, pic.tz)}",
            (x, (c.old + c.new) / 2),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=8.5,
            color=_RED,
        )
    for a in pic.adjustments:
        x = index[a.period] - 0.12
        _arrow(ax, x, a.old, a.new, _PURPLE)
        ax.annotate(
            f"{a.new - a.old:+,} after close: adjustment\nbooked into {a.into}; sealed stays",
            (index[a.period], a.new),
            xytext=(14, 10),
            textcoords="offset points",
            va="bottom",
            fontsize=8.5,
            color=_PURPLE,
        )


def _by_knowledge(ax: Any, pic: Picture) -> None:
    import matplotlib.dates as mdates

    drawn = _periods_to_draw(pic)
    left = min(pic.starts[p] for p in drawn)
    pad = max((pic.as_known_at - left) * 0.03, timedelta(hours=1))
    for n, p in enumerate(drawn):
        color, name = f"C{n % 10}", f"{p} {_weekday(p)}".strip()
        solid, dashed = _series(pic, p, pic.as_known_at + pad)
        if solid:
            ax.step(*zip(*solid, strict=True), where="post", color=color, lw=2, label=name)
        if dashed:
            ax.step(
                *zip(*dashed, strict=True),
                where="post",
                color=color,
                lw=1.5,
                ls="--",
                label=None if solid else name,
            )
        if p in pic.first:
            ax.plot(
                pic.ends[p],
                pic.first[p],
                "o",
                color=color,
                markersize=8,
                markerfacecolor="white",
                markeredgewidth=1.8,
                zorder=4,
            )
        if p in pic.sealed:
            ax.plot(
                pic.closes[p],
                pic.sealed[p],
                "s",
                markersize=12,
                markerfacecolor="none",
                markeredgecolor="black",
                markeredgewidth=1.5,
                zorder=5,
            )
    for change, color in [(c, _RED) for c in pic.corrections] + [
        (a, _PURPLE) for a in pic.adjustments
    ]:
        if change.period in drawn:
            _arrow(ax, change.at, change.old, change.new, color)
            ax.annotate(
                f"{change.new - change.old:+,}",
                (change.at, change.new),
                xytext=(-5, 4),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=8.5,
                color=color,
            )
    ax.axvline(pic.as_known_at, color=_GREY, lw=0.8, ls=":")
    _legend_marks(ax)
    ax.set_xlim(left - pad, pic.as_known_at + pad)
    ax.set_ylim(bottom=0, top=max(_values(pic)) * 1.15 or 1)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d\n%H:%M", tz=ZoneInfo(pic.tz)))
    shown = "" if len(drawn) == len(pic.periods) else f" ({len(drawn)} of {len(pic.periods)})"
    ax.set_title(
        f"2  Each day's figure as it was learned{shown}: restated until it closes, then sealed",
        loc="left",
    )
    ax.set_xlabel(f"known at ({pic.tz} time; the dotted line: as known at)")
    ax.set_ylabel(f"{pic.measure} ({pic.value_name})")


def _series(
    pic: Picture, period: str, right: datetime
) -> tuple[list[tuple[datetime, int]], list[tuple[datetime, int]]]:
    """A period's figure over knowledge time: from its start (0) until its close (solid),
    then, if anything arrived after the close, on to the right edge (dashed)."""
    close = pic.closes[period]
    points = [(pic.starts[period], 0), *pic.growth.get(period, [])]
    solid = [(t, v) for t, v in points if t <= close]
    late = [(t, v) for t, v in points if t > close]
    last = solid[-1][1] if solid else 0
    solid.append((min(close, right), last))
    if not late:
        return solid, []
    return solid, [(close, last), *late, (right, late[-1][1])]


def _legend_marks(ax: Any) -> None:
    ax.plot(
        [],
        [],
        "o",
        color=_GREY,
        markerfacecolor="white",
        markersize=8,
        label="published at the day's end",
    )
    ax.plot(
        [],
        [],
        color=_RED,
        marker=r"$\uparrow$",
        linestyle="none",
        markersize=10,
        label="correction notice",
    )
    ax.plot(
        [],
        [],
        "s",
        markerfacecolor="none",
        markeredgecolor="black",
        markersize=10,
        label="closed: sealed",
    )
    ax.plot([], [], color=_GREY, linestyle="--", label="arrived after close: adjustment")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8.5, framealpha=0.9)


def _arrow(ax: Any, x: Any, old: int, new: int, color: str) -> None:
    ax.annotate(
        "",
        xy=(x, new),
        xytext=(x, old),
        zorder=6,
        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2, "shrinkA": 2, "shrinkB": 2},
    )


def _periods_to_draw(pic: Picture) -> list[str]:
    """Every period when few; else the ones restated (corrected or adjusted) first."""
    if len(pic.periods) <= LINES_MAX:
        return pic.periods
    changed = {c.period for c in pic.corrections} | {a.period for a in pic.adjustments}
    chosen = [p for p in pic.periods if p in changed][-LINES_MAX:]
    return chosen or pic.periods[-LINES_MAX:]


def _period_ticks(ax: Any, pic: Picture) -> None:
    step = max(1, len(pic.periods) // 14)
    ticks = list(range(0, len(pic.periods), step))
    ax.set_xticks(ticks)
    labels = [f"{pic.periods[i]}\n{_weekday(pic.periods[i])}" for i in ticks]
    ax.set_xticklabels(labels, fontsize=8.5)


def _weekday(period: str) -> str:
    if len(period) != 10:
        return ""
    return datetime.fromisoformat(period).strftime("%a")


def _local(t: datetime, tz: str) -> str:
    return t.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M")


def _values(pic: Picture) -> list[int]:
    found = [0, *pic.latest.values(), *pic.first.values(), *pic.sealed.values()]
    return found + [c.new for c in pic.corrections] + [c.old for c in pic.corrections]
