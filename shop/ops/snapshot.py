"""One plain function builds everything the operations page, its stream and ``/metrics`` show.

``build_snapshot()`` reads the existing sources (``shop/pipeline/backlog.py`` for the broker's
counts, the handlers' backlog and the outbox; the outbox timeline for stage latencies; the orders,
fraud checks and dead letters) and returns a JSON-able dict. ``current_snapshot()`` shares one
answer per second within a process, so ten open pages and a scrape cost one read, not twelve.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from shop.ops import scenarios
from shop.ops.order_figures import order_figures
from shop.ops.queues import queue_rows
from shop.pipeline import heartbeat
from shop.pipeline.backlog import BacklogTracker, outbox_backlog, subscription_backlog
from shop.pipeline.stages import recent_stage_latencies

LATENCY_WINDOW_S = 300.0
LATENCY_EVERY_S = 5.0  # the stage latencies read five minutes of timeline: not every second
# How far back the handlers' backlog looks (the pipeline's default is 10 minutes): a stage stalled
# for longer must stay flagged on the embedded broker too, which has no consumer count to flag it.
# The tracker reads only from the oldest copy still open, so a longer window costs only at the start.
BACKLOG_WINDOW_S = 3600.0

SOURCES = {
    "broker": "ready and consumers: the broker itself (RabbitMQ: passive queue declare; embedded broker: "
    "its message files, no consumer count)",
    "records": "waiting, oldest age, in progress, in/out per second, latencies, dead letters: the outbox and "
    "processed-message records in PostgreSQL (the same on either broker)",
}

_lock = threading.Lock()
_cached: tuple[float, dict[str, Any]] | None = None
_latency: tuple[float, dict[str, Any]] | None = None
# The shared snapshot reads only the outbox slice since the oldest event still open at its last
# read (2-5 ms instead of 80-145 ms over 100,000 rows: docs/architecture.md, "Seeing the backlog").
_tracker = BacklogTracker(window_s=BACKLOG_WINDOW_S)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _stage_latencies(now: datetime, fresh: bool) -> dict[str, Any]:
    global _latency
    if fresh or _latency is None or time.monotonic() - _latency[0] > LATENCY_EVERY_S:
        _latency = (time.monotonic(), recent_stage_latencies(now, LATENCY_WINDOW_S))
    return _latency[1]


def build_snapshot(now: datetime | None = None, *, fresh: bool = True) -> dict[str, Any]:
    """Every figure of the pipeline at ``now``, JSON-able. ``fresh=False`` (the stream's and the
    scrape's case, called under the lock) lets the stage latencies be up to ``LATENCY_EVERY_S``
    old and reads the backlog through the process's :class:`BacklogTracker`."""
    now = now or timezone.now()
    if fresh:
        outbox, rows = outbox_backlog(now), subscription_backlog(now, window_s=BACKLOG_WINDOW_S)
    else:
        rows, outbox = _tracker.sample(now)
    figures = queue_rows(rows, now)
    queues = figures["queues"]
    return {
        "at": now.isoformat(),
        "broker": figures["broker"],
        "sources": SOURCES,
        "thresholds": {"stale_s": settings.OPS_STALE_SECONDS, "stuck_s": settings.OPS_STUCK_SECONDS},
        "queues": queues,
        "flagged": sorted(q for q, row in queues.items() if row["flagged"]),
        "subscriptions": [
            {
                "event": r["event"],
                "task": r["task"],
                "queue": r["queue"],
                "waiting": r["count"],
                "oldest_age_s": round(r["oldest_age_s"], 1) if r["oldest_age_s"] is not None else None,
            }
            for r in rows
        ],
        "stages": _stage_latencies(now, fresh),
        "outbox": {
            "waiting": outbox["waiting"],
            "oldest_age_s": outbox["oldest_age_s"],
            "oldest_created_at": _iso(outbox["oldest_created_at"]),
            "parked": outbox["parked"],
            "publish_per_s": figures["publish_per_s"],
            "relays": (relays := heartbeat.relays(now)),
            "relays_alive": sum(r["state"] == "alive" for r in relays),
        },
        "dead_letters_by_task": figures["dead_letters_by_task"],
        "orders": order_figures(now),
        "scenarios": scenarios.recent() if scenarios.available() else [],
    }


def current_snapshot(max_age_s: float = 0.9) -> dict[str, Any]:
    """The snapshot, computed at most once per ``max_age_s`` in this process (shared by every
    stream, poll and scrape it serves)."""
    global _cached
    with _lock:
        if _cached is None or time.monotonic() - _cached[0] > max_age_s:
            _cached = (time.monotonic(), build_snapshot(fresh=False))
        return _cached[1]


def forget() -> None:
    """Drop the cached answers (tests that change the database between two reads)."""
    global _cached, _latency, _tracker
    with _lock:
        _cached = _latency = None
        _tracker = BacklogTracker(window_s=BACKLOG_WINDOW_S)
