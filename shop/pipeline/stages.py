"""The stages of an order's journey as its timeline shows them, and their latency.

Every event an order's steps emit is an outbox row with its commit time, so a stage's latency is
the time between the event it consumes and the event it emits: the same definition for the
bench (``bench/journeys.py``) and the operations page (``shop/ops/``). Priority says which stages
decide an order (critical) and which may wait in a spike (low).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shop.pipeline.models import OutboxEvent


@dataclass(frozen=True)
class Stage:
    name: str
    queue: str
    consumes: tuple[str, ...]
    emits: tuple[str, ...]
    critical: bool


STAGES: tuple[Stage, ...] = (
    Stage(
        "payment authorisation", "payments", ("order.placed",), ("payment.authorized", "payment.declined", "payment.failed"), True
    ),
    Stage("fraud screening", "fraud", ("order.placed",), ("fraud.cleared", "fraud.review", "fraud.rejected"), True),
    Stage("stock reservation", "inventory", ("order.placed",), ("stock.reserved", "stock.unavailable"), True),
    Stage("the join (order ready)", "orders", ("payment.authorized", "fraud.cleared", "stock.reserved"), ("order.ready",), True),
    Stage("capture", "payments", ("order.ready",), ("payment.captured", "payment.capture_failed"), True),
    Stage("label", "shipping", ("payment.captured",), ("shipment.created",), False),
    Stage("carrier: in transit", "shipping", ("shipment.created",), ("shipment.in_transit",), False),
    Stage("carrier: delivered", "shipping", ("shipment.in_transit",), ("shipment.delivered",), False),
    Stage("order delivered", "orders", ("shipment.delivered",), ("order.delivered",), False),
    Stage("confirmation email", "notifications", ("order.placed",), ("email.sent",), False),
)
STAGE_KINDS: frozenset[str] = frozenset(k for s in STAGES for k in (*s.consumes, *s.emits))


def stage_latency(stage: Stage, events: list[tuple[str, datetime]]) -> float | None:
    """Seconds from the last event the stage needs to the first it emits after it, or None."""
    done = next((at for kind, at in events if kind in stage.emits), None)
    if done is None:
        return None
    inputs = [at for kind, at in events if kind in stage.consumes and at <= done]
    if not inputs:
        return None
    return (done - max(inputs)).total_seconds()


def quantiles(values: list[float]) -> dict[str, Any]:
    """n, p50, p95, p99 and mean in milliseconds (None each when there are no values)."""
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    values = sorted(values)

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)

    return {
        "n": len(values),
        "p50_ms": at(0.5),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
    }


def recent_stage_latencies(now: datetime, window_s: float = 300.0, *, limit: int = 20000) -> dict[str, dict[str, Any]]:
    """Each stage's latency quantiles over the stages that finished in the last ``window_s``.

    Two bounded reads: the orders with a stage's output event in the window, then those orders'
    stage events (their inputs may be older than the window). ``limit`` caps the rows read, so a
    page that asks every few seconds stays cheap under a burst (the newest rows are kept).
    """
    since = now - timedelta(seconds=window_s)
    emitted = frozenset(k for s in STAGES for k in s.emits)
    recent = OutboxEvent.objects.filter(created_at__gte=since, kind__in=emitted, target_task="").values("order_id")
    rows = (
        OutboxEvent.objects.filter(order_id__in=recent, kind__in=STAGE_KINDS, target_task="")
        .order_by("-created_at")
        .values_list("order_id", "kind", "created_at")[:limit]
    )
    per_order: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for order_id, kind, at in rows:
        per_order[order_id].append((kind, at))
    per_stage: dict[str, list[float]] = defaultdict(list)
    for events in per_order.values():
        events.sort(key=lambda e: e[1])
        for stage in STAGES:
            latency = stage_latency(stage, events)
            done = next((at for kind, at in events if kind in stage.emits), None)
            if latency is not None and done is not None and done >= since:
                per_stage[stage.name].append(latency)
    return {s.name: {"queue": s.queue, "critical": s.critical, **quantiles(per_stage[s.name])} for s in STAGES}
