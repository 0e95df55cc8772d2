"""PNG charts of a benchmark's results, drawn from plain dicts (the JSON the bench writes).

matplotlib with the Agg backend: no display, the same pixels on a laptop and in CI.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on a server
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

PERCENTILES = (("p50_ms", "p50"), ("p99_ms", "p99"))


def _marks(ax: Axes, marks: dict[str, float], *, label: bool) -> None:
    for name, t in marks.items():
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        if label:
            ax.annotate(name, (t, 1), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right", fontsize=7)


def completion_rate(series: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Orders completed per second, from the slope of the completed count between samples."""
    points = [(s["t"], s["orders"]["completed"]) for s in series if (s.get("orders") or {}).get("completed") is not None]
    times, rates = [], []
    for (t0, c0), (t1, c1) in itertools.pairwise(points):
        if t1 > t0:
            times.append(t1)
            rates.append((c1 - c0) / (t1 - t0))
    return times, rates


def timeline_chart(
    series: list[dict[str, Any]],
    marks: dict[str, float],
    path: Path,
    title: str,
    latency: list[dict[str, Any]] | None = None,
) -> Path:
    """Three panels over time: checkout latency (p50, p99: ``latency``, or the series' own
    ``checkout`` entries), each queue's depth and the outbox's waiting rows, and the
    completion rate; a dotted line at each mark."""
    latency = latency if latency is not None else [{"t": s["t"], **s["checkout"]} for s in series if s.get("checkout")]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(10, 8), constrained_layout=True)
    _latency_panel(top, latency)
    _queues_panel(middle, series)
    rate_t, rates = completion_rate(series)
    bottom.plot(rate_t, rates, color="tab:green")
    bottom.set_ylabel("orders completed / s")
    bottom.set_xlabel("seconds")
    for ax in (top, middle, bottom):
        ax.grid(alpha=0.3)
        _marks(ax, marks, label=ax is top)
    fig.suptitle(title)
    return _save(fig, path)


def _latency_panel(ax: Axes, latency: list[dict[str, Any]]) -> None:
    for key, name in PERCENTILES:
        ax.plot([p["t"] for p in latency], [p.get(key) for p in latency], label=name)
    ax.set_ylabel("checkout ms")
    if latency:
        ax.legend(loc="upper left", fontsize=7)
    else:
        ax.text(0.5, 0.5, "no latency recorded", transform=ax.transAxes, ha="center", color="grey")


def _queues_panel(ax: Axes, series: list[dict[str, Any]]) -> None:
    times = [s["t"] for s in series]
    for queue in dict.fromkeys(q for s in series for q in s.get("queues", {})):
        ax.plot(times, [(s.get("queues", {}).get(queue) or {}).get("depth") for s in series], label=queue)
    ax.plot(times, [(s.get("outbox") or {}).get("waiting") for s in series], label="outbox", color="black", linestyle="--")
    ax.set_ylabel("messages waiting")
    ax.legend(loc="upper left", fontsize=7, ncol=4)


def bars_chart(groups: dict[str, dict[str, float]], path: Path, title: str, ylabel: str, *, log: bool = False) -> Path:
    """Grouped bars: one group per key of ``groups`` (a rate, say), one bar per inner key
    (``"sync p50"``, ``"async p99"``...), in first-seen order."""
    names = list(dict.fromkeys(name for bars in groups.values() for name in bars))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(groups) * max(len(names), 1) + 2), 5), constrained_layout=True)
    for i, name in enumerate(names):
        xs = [g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [bars.get(name, 0.0) for bars in groups.values()], width, label=name)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    if names:
        ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def latency_by_rate_chart(rows: list[dict[str, Any]], path: Path, title: str, *, log: bool = True) -> Path:
    """p50 and p99 per offered rate (``{"rate", "p50_ms", "p99_ms"}`` rows); rows may carry
    ``"ceiling"``: the highest rate the shop sustained, drawn as a vertical line (one row
    saying so is enough), and ``"achieved"`` (orders/s), shown on a second axis."""
    rows = sorted(rows, key=lambda r: r["rate"])
    rates = [r["rate"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for key, name in PERCENTILES:
        ax.plot(rates, [r.get(key) for r in rows], marker="o", label=name)
    ceiling = next((r["ceiling"] for r in rows if r.get("ceiling") is not None), None)
    if ceiling is not None:
        ax.axvline(ceiling, color="red", linestyle="--", label=f"ceiling {ceiling:g}/s")
    if any(r.get("achieved") is not None for r in rows):
        twin = ax.twinx()
        twin.plot(rates, [r.get("achieved") for r in rows], color="grey", linestyle=":", marker=".", label="achieved /s")
        twin.set_ylabel("achieved orders / s")
        twin.legend(loc="lower right", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("offered orders / s")
    ax.set_ylabel("checkout ms")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
