"""The benchmark's charts (bench/charts.py) drawn from synthetic results: each writes a PNG."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import charts

PNG = b"\x89PNG\r\n\x1a\n"


def synthetic_series(seconds: int = 60) -> list[dict]:
    series = []
    for t in range(1, seconds + 1):
        burst = 20 <= t < 30
        series.append(
            {
                "t": float(t),
                "queues": {
                    "orders": {"depth": 40 * (t - 20) if burst else 0, "consumers": 1},
                    "payments": {"depth": 5 if burst else 0, "consumers": 1},
                    "dead_letters": {"depth": 0, "consumers": 0},
                },
                "outbox": {"waiting": 3 if burst else 0, "parked": 0},
                "orders": {"placed": 10 * t, "completed": max(0, 10 * t - 30)},
                "cpu": {"web": 0.5, "worker-orders": 0.8 if burst else 0.2},
                "checkout": {"p50_ms": 12 + (30 if burst else 0), "p99_ms": 40 + (200 if burst else 0)},
            }
        )
    return series


def assert_png(path: Path) -> None:
    assert path.exists()
    assert path.stat().st_size > 10_000, "a drawn chart, not an empty canvas"
    assert path.read_bytes()[:8] == PNG


def test_completion_rate_is_the_slope_of_the_completed_count() -> None:
    times, rates = charts.completion_rate(synthetic_series(5))
    assert times == [2.0, 3.0, 4.0, 5.0]
    assert rates == [0.0, 0.0, 10.0, 10.0]


@pytest.mark.parametrize("latency", ["series", "given", "none"])
def test_timeline_chart(tmp_path: Path, latency: str) -> None:
    series = synthetic_series()
    given = [{"t": s["t"], **s["checkout"]} for s in series]
    if latency != "series":
        for s in series:
            del s["checkout"]
    path = charts.timeline_chart(
        series, {"burst start": 20.0, "burst end": 30.0}, tmp_path / "out" / "timeline.png", "Burst",
        latency=given if latency == "given" else None,
    )  # fmt: skip
    assert path == tmp_path / "out" / "timeline.png"
    assert_png(path)


@pytest.mark.parametrize("log", [False, True])
def test_bars_chart(tmp_path: Path, log: bool) -> None:
    groups = {
        "10/s": {"sync p50": 80.0, "sync p99": 400.0, "async p50": 12.0, "async p99": 40.0},
        "50/s": {"sync p50": 900.0, "sync p99": 5000.0, "async p50": 15.0, "async p99": 90.0},
    }
    assert_png(charts.bars_chart(groups, tmp_path / "bars.png", "Checkout latency", "ms", log=log))


def test_latency_by_rate_chart(tmp_path: Path) -> None:
    rows = [
        {"rate": rate, "p50_ms": 10 + rate / 10, "p99_ms": 30 + rate, "achieved": min(rate, 120), "ceiling": 120}
        for rate in (10, 50, 100, 150, 200)
    ]
    assert_png(charts.latency_by_rate_chart(rows, tmp_path / "rates.png", "Latency by offered rate"))
