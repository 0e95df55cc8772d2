"""``/metrics``: gauges computed at scrape time from the operations snapshot, and the latency
histograms.

The gauges are a custom collector, not gauges set by the processes that see the work: every
figure lives in the database and the broker already, so whichever web worker answers a scrape
gives the same, consistent answer. Latencies are seen only by the process that served them, so
the checkout and stage histograms are written by those processes into the multiprocess directory
and summed here (``shop/pipeline/latency_metrics.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shop.ops.snapshot import current_snapshot
from shop.pipeline.latency_metrics import add_histograms


def _gauge(name: str, doc: str, labels: list[str], samples: list[tuple[list[str], float | None]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        if value is not None:
            family.add_metric(values, value)
    return family


# (metric, help, snapshot key) per queue; "broker" or "records" says where the figure comes from.
QUEUE_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("shop_queue_waiting", "Published copies the handlers have not processed (records)", "waiting"),
    ("shop_queue_ready", "Messages ready in the queue (broker)", "ready"),
    ("shop_queue_consumers", "Consumers of the queue (broker; RabbitMQ only)", "consumers"),
    ("shop_queue_in_progress", "Copies taken by a worker or waiting for a retry (records less broker)", "in_progress"),
    ("shop_queue_oldest_age_seconds", "Age of the oldest copy not processed (records)", "oldest_age_s"),
    ("shop_queue_in_per_second", "Copies published to the queue per second over the last minute (records)", "in_per_s"),
    ("shop_queue_out_per_second", "Copies handled per second over the last minute (records)", "out_per_s"),
    ("shop_queue_flagged", "1 when the queue is flagged: too old, or waiting with no consumer", "flagged"),
    ("shop_queue_dead_letters", "Parked dead letters of the queue's tasks (records)", "dead_letters"),
)
OUTBOX_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("shop_outbox_waiting", "Outbox events the relay has yet to publish", "waiting"),
    ("shop_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox event (0 when none)", "oldest_age_s"),
    ("shop_outbox_parked", "Outbox rows parked after failed publishes", "parked"),
    ("shop_outbox_publish_per_second", "Events published per second over the last minute", "publish_per_s"),
    ("shop_relays_alive", "Relays whose heartbeat is fresh (within three RELAY_HEARTBEAT_SECONDS)", "relays_alive"),
)


def _seconds(value_ms: float | None) -> float | None:
    return value_ms / 1000 if value_ms is not None else None


def families(snap: dict[str, Any]) -> Iterator[Metric]:
    """The snapshot as Prometheus metric families (a figure the source did not give is left out)."""
    queues = snap["queues"]
    for name, doc, key in QUEUE_GAUGES:
        samples = [([q], None if row[key] is None else float(row[key])) for q, row in queues.items()]
        yield _gauge(name, doc, ["queue"], samples)
    outbox = snap["outbox"]
    for name, doc, key in OUTBOX_GAUGES:
        yield _gauge(name, doc, [], [([], outbox[key] or 0.0)])
    orders = snap["orders"]
    yield _gauge("shop_orders", "Orders by status", ["status"], [([s], n) for s, n in orders["by_status"].items()])
    stuck = len(orders["stuck"])
    yield _gauge("shop_orders_stuck", "Orders with no progress past OPS_STUCK_SECONDS (20 at most)", [], [([], stuck)])
    yield _gauge("shop_orders_in_review", "Open fraud reviews (20 at most)", [], [([], len(orders["reviews"]))])
    dlq = snap["broker"]["dead_letter_queue"]
    yield _gauge("shop_dead_letter_queue_depth", "Messages in the dead-letter queue (broker)", [], [([], dlq)])
    by_task = [([task], n) for task, n in snap["dead_letters_by_task"].items()]
    yield _gauge("shop_dead_letters", "Parked dead letters per task (records)", ["task"], by_task)
    retries = snap["broker"]["retries_waiting"]
    doc = "Retries waiting for their delay, all queues together (broker; RabbitMQ only)"
    yield _gauge("shop_retries_waiting", doc, [], [([], retries)])
    stages = snap["stages"].items()
    for q in ("p50", "p95"):
        doc = f"Stage latency {q} over the last five minutes (timeline)"
        yield _gauge(f"shop_stage_latency_{q}_seconds", doc, ["stage"], [([n], _seconds(s[f"{q}_ms"])) for n, s in stages])


class SnapshotCollector(Collector):
    """Reads the (per-process, one-second) snapshot at each scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from families(current_snapshot())

    def describe(self) -> list[Metric]:
        return []  # nothing is read at registration: the figures exist only at scrape time


@cache
def registry() -> CollectorRegistry:
    """A registry of the shop's figures alone (not the default one, which holds process metrics
    of whichever web worker answers, misleading beside figures that are the shop's)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SnapshotCollector())
    add_histograms(reg)
    return reg
