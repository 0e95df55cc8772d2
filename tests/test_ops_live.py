"""The operations snapshot and /metrics with real relay and worker processes, on RabbitMQ and
on the embedded broker: a queue nobody consumes is flagged while its backlog grows, and
unflagged once a worker drains it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from shop.celery import app
from shop.ops import snapshot
from shop.pipeline.events import task_queues
from shop.pipeline.queues import is_rabbitmq
from tests import harness

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

BUT_NOTIFICATIONS = "orders,payments,fraud,inventory,shipping"


def fresh() -> dict[str, Any]:
    snapshot.forget()
    return snapshot.build_snapshot()


@override_settings(OPS_STALE_SECONDS=3)
def test_a_queue_with_no_worker_is_flagged_and_clears_when_drained(
    catalog: dict[str, int], shop_api: Any, staff_client: Any, without_shared_pipeline: None, tmp_path: Path
) -> None:
    harness.empty_broker()
    rabbitmq = is_rabbitmq(app.conf.broker_url)
    procs = [harness.relay(tmp_path), harness.worker(tmp_path, name="ops-live", queues=BUT_NOTIFICATIONS)]
    try:
        if rabbitmq:  # the worker is up and consuming (the broker counts it) before any order
            harness.wait_until(lambda: fresh()["queues"]["payments"]["consumers"] == 1, 30, interval=0.3, what="the worker")
        stage_counts = stage_latency_counts(staff_client)
        ids = [shop_api.place(sku="SKU-1", email=f"ops{n}@example.com")["id"] for n in range(3)]

        def backlog() -> dict[str, Any] | None:
            row = fresh()["queues"]["notifications"]
            return row if row["waiting"] >= 3 and row["ready"] >= 3 and row["flagged"] else None

        row = harness.wait_until(backlog, 60, interval=0.3, what="the notifications backlog flagged")
        if rabbitmq:  # the broker says nobody consumes it: flagged at once
            assert row["consumers"] == 0 and any("no consumer" in f for f in row["flags"])
        else:  # the embedded broker keeps no consumer count: the age flags it
            assert row["consumers"] is None and any("oldest message waiting" in f for f in row["flags"])
        snap = fresh()
        assert "notifications" in snap["flagged"]
        assert snap["queues"]["payments"]["consumers"] == (1 if rabbitmq else None)
        assert snap["broker"]["source"] == ("rabbitmq" if rabbitmq else "filesystem")
        scraped = staff_client.get("/metrics").content.decode()
        waiting = next(line for line in scraped.splitlines() if line.startswith('shop_queue_waiting{queue="notifications"}'))
        assert float(waiting.rsplit(" ", 1)[1]) >= 3
        assert 'shop_queue_flagged{queue="notifications"} 1.0' in scraped

        procs.append(harness.worker(tmp_path, name="ops-live-notifications", queues="notifications", beat=False))
        harness.wait_until(lambda: fresh()["orders"]["by_status"]["delivered"] == 3, 90, interval=0.5, what="three deliveries")

        def drained() -> bool:
            snap = fresh()
            row = snap["queues"]["notifications"]
            return row["waiting"] == 0 and not row["flagged"] and not snap["flagged"]

        harness.wait_until(drained, 60, interval=0.5, what="the notifications backlog to drain")
        assert fresh()["queues"]["notifications"]["out_per_s"] > 0
        # The workers' own histogram files, summed by the web process: every stage of the three
        # orders counted once, the emails' with the whole time they waited for a worker.
        counted = stage_latency_counts(staff_client)
        grew = {task: counted.get(task, 0) - stage_counts.get(task, 0) for task in task_queues()}
        assert all(grew[t] == 3 for t in ("orders.payments.tasks.authorize_payment", "shipping.tasks.create_shipment")), grew
        assert grew["notifications.tasks.send_order_email"] >= 3, grew
        assert len(ids) == 3
    finally:
        for proc in procs:
            proc.stop()


def stage_latency_counts(staff_client: Any) -> dict[str, float]:
    """Task -> finished tasks counted in ``shop_stage_latency_seconds``."""
    counts: dict[str, float] = {}
    for line in staff_client.get("/metrics").content.decode().splitlines():
        if line.startswith("shop_stage_latency_seconds_count{"):
            task = line.split('task="', 1)[1].split('"', 1)[0]
            counts[task] = counts.get(task, 0) + float(line.rsplit(" ", 1)[1])
    return counts


@pytest.fixture
def staff_client(client: Any, django_user_model: Any) -> Any:
    client.force_login(django_user_model.objects.create_user("ops-live-staff", password="x" * 20, is_staff=True))
    return client
