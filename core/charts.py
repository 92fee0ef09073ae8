"""The ``/stats`` chart: one PNG for Telegram (a photo), Discord (an embed image) and
``GET /api/v1/stats/chart.png``.

Top: win rate and average return by catalyst type across every trader's reports,
the sample size written on each bar. Bottom: the caller's cumulative reported
return over time. Rendered with matplotlib's object API on the Agg canvas (no
pyplot, no display, no global backend switch), so it is safe in a worker thread;
matplotlib is imported on the first render, never at import time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from domain.outcomes import GroupStats

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 8.0, 100
#: The PNG's size in pixels (clients may rely on it to lay the image out).
SIZE = (int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI))
WIN, LOSS, LINE = "#2e7d32", "#c62828", "#1565c0"


def render_stats_chart(
    groups: Sequence[GroupStats], returns: Sequence[tuple[datetime, float]], *, who: str
) -> bytes:
    """The two charts as one PNG of :data:`SIZE` pixels."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    top, bottom = fig.subplots(2, 1)
    _by_catalyst(top, [g for g in groups if g.stats.trades_executed])
    _cumulative(bottom, returns, who)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _by_catalyst(ax: Any, groups: list[GroupStats]) -> None:
    ax.set_title("Win rate and average return by catalyst (all traders' reports)")
    if not groups:
        _empty(ax, "No executed trades reported yet")
        return
    names = [_literal(g.key) for g in groups]
    positions = list(range(len(groups)))
    win_rates = [g.stats.win_rate * 100 for g in groups]
    bars = ax.bar(positions, win_rates, color=WIN, width=0.6, label="win rate %")
    ax.set_ylim(0, 115)
    ax.set_ylabel("win rate %")
    ax.set_xticks(positions, names, rotation=30, ha="right")
    for bar, group in zip(bars, groups, strict=True):
        ax.annotate(
            f"n={group.stats.trades_executed}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    right = ax.twinx()
    averages = [g.stats.avg_return or 0.0 for g in groups]
    right.plot(positions, averages, "o", color=LOSS, label="avg return %")
    for x, value in zip(positions, averages, strict=True):
        right.annotate(
            f"{value:+.1f}%",
            (x, value),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=LOSS,
        )
    right.axhline(0, color="#999999", linewidth=0.5)
    right.set_ylabel("avg return %", color=LOSS)


def _cumulative(ax: Any, returns: Sequence[tuple[datetime, float]], who: str) -> None:
    ax.set_title(f"Cumulative reported return: {_literal(who)}")
    if not returns:
        _empty(ax, "No returns reported yet: /feedback SIGNAL_ID win 12.5")
        return
    times = [t for t, _ in returns]
    values = [v for _, v in returns]
    ax.step(times, values, where="post", color=LINE)
    ax.fill_between(times, values, step="post", alpha=0.15, color=LINE)
    ax.axhline(0, color="#999999", linewidth=0.5)
    ax.set_ylabel("sum of returns %")
    ax.tick_params(axis="x", labelrotation=30)


def _literal(text: str) -> str:
    """User-chosen text (a name, a catalyst type) shown as written: matplotlib would
    read ``$...$`` as math, and a malformed formula fails the whole render."""
    return text.replace("$", r"\$")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])
