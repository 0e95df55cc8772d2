"""The two latency histograms of ``/metrics``, observed by the processes that see the latency.

A gauge of the shop's state (a queue's depth, the outbox's age) is read at scrape time from the
database and the broker (``shop/ops/metrics.py``). A latency is seen only where it happens: a
checkout's in the web worker that answered it, a stage's in the worker child that finished it.
So these are ``prometheus_client`` histograms in its multiprocess mode: with
``PROMETHEUS_MULTIPROC_DIR`` set, every process writes its samples to a file of its own in that
directory and ``/metrics`` sums the files, whichever web worker answers. Without it (a bare
``runserver``, a one-off command) a process keeps its own samples in memory.

Files are named by host and pid, not pid alone: containers sharing one directory (compose mounts
one volume into the web server and every worker) reuse the same small pids.

A stage's latency is the time from the writing of the event a task consumes (its outbox row's
``created_at``, which the relay sends in the message's ``emitted_at`` header) to the end of the
task that took effect, the wait in the outbox and the queue and the retries included: what a
backlog costs an order.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram, values
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The shared samples directory, or None when this process keeps its own."""
    path = os.environ.get(MULTIPROC_ENV, "")
    return Path(path) if path else None


def _process_identifier() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


if (_dir := multiprocess_dir()) is not None:
    _dir.mkdir(parents=True, exist_ok=True)
    values.ValueClass = values.MultiProcessValue(_process_identifier)

STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
CHECKOUT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

STAGE_LATENCY = Histogram(
    "shop_stage_latency_seconds",
    "From the writing of the event a task consumes to the end of the task that took effect (queueing and retries included)",
    ["task", "queue"],
    buckets=STAGE_BUCKETS,
)
CHECKOUT_LATENCY = Histogram(
    "shop_checkout_latency_seconds",
    "Checkout requests, from the web server taking them to the answer, by endpoint and HTTP status",
    ["endpoint", "code"],
    buckets=CHECKOUT_BUCKETS,
)


def observe_stage(task: str, queue: str, emitted_at: object, now: float | None = None) -> None:
    """Count one finished task; a message without a usable ``emitted_at`` (sent by hand, or by
    a release before the header existed) is left out rather than counted as zero."""
    try:
        started = float(emitted_at)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    STAGE_LATENCY.labels(task, queue).observe(max(0.0, (now or time.time()) - started))


def observe_checkout(endpoint: str, code: int, seconds: float) -> None:
    CHECKOUT_LATENCY.labels(endpoint, str(code)).observe(seconds)


OWN_PREFIX = "shop_"


class ShopFiles(Collector):
    """The shop's own families from every process's files. The swap of ``ValueClass`` above
    holds for every metric a process creates afterwards, so a process that loads the tasks for
    other reasons (Flower does) writes its own counters and gauges into the directory too:
    those are its own ``/metrics``' business, not the shop's."""

    def __init__(self, path: Path) -> None:
        self.files = MultiProcessCollector(None, path=str(path))

    def collect(self) -> Iterator[Metric]:
        return (family for family in self.files.collect() if family.name.startswith(OWN_PREFIX))


def add_histograms(registry: CollectorRegistry) -> None:
    """Register the histograms on ``registry``: every process's files in multiprocess mode,
    else this process's own."""
    shared = multiprocess_dir()
    if shared is not None:
        registry.register(ShopFiles(shared))
    else:
        registry.register(STAGE_LATENCY)
        registry.register(CHECKOUT_LATENCY)
