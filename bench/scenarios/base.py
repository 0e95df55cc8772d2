"""What every scenario shares: the run's options, a figure beside its ceiling, the checker at the end."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.runtime import BenchShop, Outside

log = logging.getLogger("bench")


@dataclass
class Figure:
    """One measured figure; ``ceiling`` names the stack limit it is compared with (a key of the ceilings)."""

    name: str
    value: float | None
    unit: str
    how: str
    ceiling: str | None = None
    ceiling_value: float | None = None  # when the comparison is not a ceiling figure (e.g. idle p99)
    ceiling_label: str = ""
    higher_is_better: bool = False

    def as_dict(self, ceilings: dict[str, dict[str, Any]]) -> dict[str, Any]:
        limit, label = self.ceiling_value, self.ceiling_label
        if self.ceiling and self.ceiling in ceilings:
            limit = ceilings[self.ceiling]["value"]
            label = label or f"{self.ceiling} ({ceilings[self.ceiling]['unit']})"
        ratio = None
        if self.value is not None and limit:
            ratio = round(self.value / limit, 3)
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "how": self.how,
            "ceiling": label or None,
            "ceiling_value": limit,
            "ratio": ratio,
            "higher_is_better": self.higher_is_better,
        }


@dataclass
class Run:
    """Options of one ``manage.py bench`` invocation, and what earlier scenarios of it found."""

    quick: bool = False
    url: str | None = None
    keep: bool = False
    out_dir: Path = Path("bench/results")
    ceilings: dict[str, dict[str, Any]] = field(default_factory=dict)
    found: dict[str, dict[str, Any]] = field(default_factory=dict)  # scenario -> its data, for later ones
    seq: int = 0
    soak_orders: int | None = None  # the soak's order count (default 10,000; a few dozen when quick)
    soak_rate: float | None = None  # orders/s of the soak (default 0.8x saturate's overall rate, or 5)
    arrangement: str = "default"  # the process arrangement of shop/local/processes.py

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def count(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @contextlib.contextmanager
    def shop(self, scenario: str, outside: Outside | None = None, **kwargs: Any) -> Iterator[BenchShop]:
        """A shop of the scenario's own (database and vhost named after it), stopped and dropped after."""
        self.seq += 1
        name = f"bench_{scenario.replace('-', '_')}_{os.getpid()}_{self.seq}"
        kwargs.setdefault("arrangement", self.arrangement)
        shop = BenchShop(name=name, outside=outside or Outside(), url=self.url, keep=self.keep, **kwargs)
        shop.start()
        try:
            yield shop
        finally:
            shop.stop()


@dataclass
class Result:
    scenario: str
    figures: list[Figure] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    charts: list[str] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def timeline(self, path: Path, samples: dict[str, Any], load: Any, title: str, marks: dict[str, Any] | None = None) -> None:
        """The run's chart (checkout latency, queue depths, completions over time) at ``path``;
        ``marks`` are seconds from the start (default: the sampler's own)."""
        from bench import charts

        started = samples["started_at"]
        charts.timeline_chart(
            samples["series"], samples.get("marks", {}) if marks is None else marks, path, title, latency=load.per_second(started)
        )
        self.charts.append(str(path))


def audit(order_ids: list[str], drained: bool) -> dict[str, Any]:
    """The checker (``manage.py audit``) over the scenario's database: violations must be none."""
    from shop.proof import audit as checker

    report = checker.run(expected_orders=order_ids, quiet=None if drained else False, deadline_seconds=600)
    return {"violations": [str(v) for v in report.violations], "stats": report.stats, "clean": not report.violations}
