"""The benchmark's sampler (bench/sampler.py) against real processes, the broker and the database:
a busy role uses CPU and an idle one does not, a role's children count, memory is recorded,
queue depths and order counts come through, and the sampler reports what it cost."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

import psutil
import pytest
from django.conf import settings
from kombu import Connection

from bench.procstat import CpuMeter, memory, scan_proc, tree
from bench.sampler import Sampler
from orders.models import Order
from shop.pipeline.backlog import PROBED_QUEUES
from shop.pipeline.queues import celery_queues, declare_dead_letters, is_rabbitmq

BUSY = [sys.executable, "-c", "while True: pass"]
# A parent that only waits, and a busy child: the role's CPU is its child's.
PARENT = [sys.executable, "-c", f"import subprocess; subprocess.run({BUSY!r})"]


@pytest.fixture
def procs() -> Iterator[dict[str, subprocess.Popen]]:
    started = {
        "busy": subprocess.Popen(BUSY),
        "idle": subprocess.Popen(["sleep", "60"]),
        "parent": subprocess.Popen(PARENT),
    }
    yield started
    for proc in started.values():
        for pid in sorted(tree([proc.pid], scan_proc()), reverse=True):  # the children first
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def make_order(**fields: object) -> Order:
    return Order.objects.create(
        email="ada@example.com", name="Ada", address_line1="1 St", city="London", postal_code="N1", country="GB",
        total=Decimal("10.00"), card_brand="visa", card_last4="4242", card_token="tok", **fields,
    )  # fmt: skip


def test_cpu_meter_counts_a_busy_tree_and_not_an_idle_process(procs: dict[str, subprocess.Popen]) -> None:
    roles = {name: [p.pid] for name, p in procs.items()}
    meter = CpuMeter()
    assert meter.measure(roles) is None
    began, before = time.monotonic(), cpu_seconds(procs["busy"].pid)
    time.sleep(1.0)
    used, elapsed = cpu_seconds(procs["busy"].pid) - before, time.monotonic() - began
    cores = meter.measure(roles)
    assert used > 0.05  # a whole core on an idle machine, less on a loaded one
    assert cores["busy"] == pytest.approx(used / elapsed, abs=0.05), "what the process itself says it used"
    assert cores["parent"] > 0.05, "a role's descendants count"
    assert cores["idle"] < 0.02
    alone = CpuMeter()
    alone.measure(roles, children=False)
    time.sleep(0.5)
    assert alone.measure(roles, children=False)["parent"] < 0.05, "the waiting parent alone is idle"
    mem = memory(roles)
    assert mem["parent"]["processes"] == 2
    assert mem["busy"]["rss_mb"] > 1
    assert 0 < mem["busy"]["pss_mb"] <= mem["busy"]["rss_mb"]


@pytest.fixture
def queued() -> Iterator[int]:
    """Three messages waiting in the orders queue of this run's broker."""
    url = settings.CELERY_BROKER_URL
    opts = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    with Connection(url, transport_options=opts) as conn:
        for queue in celery_queues(rabbitmq=is_rabbitmq(url)):
            queue(conn.default_channel).declare()
        if is_rabbitmq(url):
            declare_dead_letters(conn)
        conn.default_channel.queue_purge("orders")
        producer = conn.Producer()
        for n in range(3):
            producer.publish({"n": n}, exchange="pipeline", routing_key="orders", serializer="json")
        yield 3
        conn.default_channel.queue_purge("orders")


def test_sampler_records_cpu_memory_queues_orders_and_its_own_cost(
    procs: dict[str, subprocess.Popen], queued: int, transactional_db: None
) -> None:
    make_order()
    Order.objects.filter(pk=make_order().pk).update(status="cancelled")
    before = cpu_seconds(procs["busy"].pid)
    sampler = Sampler(pids=lambda: {n: [p.pid] for n, p in procs.items()}, interval=0.3, memory_interval=0.6).start()
    assert len(sampler.series) == 1, "start() returns after the first sample, before any load begins"
    time.sleep(1.0)
    sampler.mark("half way")
    time.sleep(1.0)
    sampler.mark("half way")
    result = sampler.stop()
    used = cpu_seconds(procs["busy"].pid) - before
    series = result["series"]
    assert len(series) >= 3  # about 6: fewer on a loaded machine, whose late samples are not made up for
    times = [s["t"] for s in series]
    assert times == sorted(times) and times[0] >= 0.29
    assert all(b - a > 0.2 for a, b in itertools.pairwise(times)), "no burst after a late sample"
    last = series[-1]
    assert set(last["queues"]) == set(PROBED_QUEUES)
    assert last["queues"]["orders"]["depth"] == queued
    assert last["broker"] == ("rabbitmq" if is_rabbitmq(settings.CELERY_BROKER_URL) else "filesystem")
    assert last["orders"] == {"placed": 2, "completed": 1}
    assert last["outbox"]["waiting"] == 0
    starts = [0.0, *times]
    measured = sum(s["cpu"]["busy"] * (s["t"] - start) for s, start in zip(series, starts, strict=False))
    assert 0.5 * used - 0.05 < measured <= 1.1 * used + 0.03, "cores x time is the CPU the busy process used"
    assert max(s["cpu"]["idle"] for s in series) < 0.05
    assert {"client", "sampler"} <= set(last["cpu"])
    assert len(result["memory"]) >= 2
    assert result["memory"][0]["roles"]["busy"]["pss_mb"] > 0
    assert list(result["marks"]) == ["half way", "half way (2)"]
    assert 1.2 < result["marks"]["half way"] < 1.9  # the first sample (0.3 s), then 1 s
    cost = result["cost"]
    assert cost["samples"] == len(series)
    assert 0 < cost["thread_cores"] < 0.5
    assert cost["db_backend_cpu_s"] is not None, "the database runs on this machine in tests"
    assert result["errors"] == {}
