"""What the bench's orders went through, read back from the outbox (the orders' timelines).

The stages and their latency definition live in ``shop/pipeline/stages.py``, shared with the
operations page: a stage's latency is the time between the event it consumes and the event it
emits, both outbox commit times.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from shop.pipeline.stages import STAGES, Stage, quantiles, stage_latency

__all__ = [
    "STAGES",
    "TERMINAL_EVENTS",
    "Stage",
    "end_to_end",
    "quantiles",
    "relay_leg",
    "slowest",
    "stage_latency",
    "stage_report",
    "timelines",
]


TERMINAL_EVENTS = ("order.delivered", "order.cancelled")


def timelines(order_ids: list[str]) -> dict[str, list[tuple[str, datetime]]]:
    """order id -> [(event kind, created_at)] in commit order, for the given orders."""
    found: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for order_id, kind, at in _events(order_ids, "order_id", "kind", "created_at"):
        found[order_id].append((kind, at))
    return found


def _events(order_ids: list[str], *fields: str, **where: Any) -> Iterator[tuple]:
    """The orders' pipeline events (not replays aimed at one task) in commit order, as tuples
    of ``fields``; 2,000 orders a query, so that a long run's ids fit in one statement."""
    from shop.pipeline.models import OutboxEvent

    for start in range(0, len(order_ids), 2000):
        chunk = order_ids[start : start + 2000]
        rows = OutboxEvent.objects.filter(order_id__in=chunk, target_task="", **where).order_by("created_at")
        yield from rows.values_list(*fields)


def stage_report(order_ids: list[str], *, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """Each stage's latency quantiles over the orders (optionally only inputs in a time window)."""
    per_stage: dict[str, list[float]] = defaultdict(list)
    for events in timelines(order_ids).values():
        for stage in STAGES:
            latency = stage_latency(stage, events)
            if latency is None:
                continue
            started = max(at for kind, at in events if kind in stage.consumes)
            if (since and started < since) or (until and started >= until):
                continue
            per_stage[stage.name].append(latency)
    return {
        stage.name: {"queue": stage.queue, "critical": stage.critical, **quantiles(per_stage[stage.name])} for stage in STAGES
    }


def relay_leg(order_ids: list[str]) -> dict[str, Any]:
    """Each event's time from its commit to its confirmed publish (``published_at``): the relay's
    share of every hop, which tells a slow hop's relay from its broker, worker and task."""
    rows = _events(order_ids, "created_at", "published_at", published_at__isnull=False)
    return quantiles([max(0.0, (published - created).total_seconds()) for created, published in rows])


def end_to_end(created: list[tuple[str, float]]) -> dict[str, Any]:
    """Seconds from each 201 to the order's terminal event, and how many reached one."""
    walls = dict(created)
    latencies = []
    for order_id, events in timelines(list(walls)).items():
        terminal = next((at for kind, at in events if kind in TERMINAL_EVENTS), None)
        if terminal is None:
            continue
        latencies.append(max(0.0, terminal.timestamp() - walls[order_id]))
    return {**quantiles(latencies), "not_terminal": len(walls) - len(latencies)}


def slowest(report: dict[str, Any], key: str = "p50_ms") -> str | None:
    timed = [(v[key], name) for name, v in report.items() if v.get(key) is not None]
    return max(timed)[1] if timed else None
