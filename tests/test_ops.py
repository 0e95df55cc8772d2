"""The operations page without workers: who may see it, its snapshot's figures from hand-made
states, the map drawn from the pipeline map, the stream, and /metrics."""

from __future__ import annotations

import importlib
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from shop.celery import app
from shop.ops import graph, snapshot
from shop.ops.views import sse_events
from shop.pipeline import events
from shop.pipeline.events import PIPELINE, Subscription
from shop.pipeline.models import DeadLetter, OutboxEvent, ProcessedMessage
from tests import harness
from tests.harness import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_snapshot() -> None:
    """The snapshot reads the broker's real depths: what an earlier test left there would be flagged here."""
    snapshot.forget()
    harness.empty_broker()


@pytest.fixture
def staff(client: Any, django_user_model: Any) -> Any:
    client.force_login(django_user_model.objects.create_user("ops-staff", password="x" * 20, is_staff=True))
    return client


@pytest.fixture
def customer(client: Any, django_user_model: Any) -> Any:
    client.force_login(django_user_model.objects.create_user("ops-customer", password="x" * 20))
    return client


# ---- access -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ops/", "/ops/stream", "/ops/snapshot.json"])
def test_anonymous_visitors_are_sent_to_the_admin_login(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=" + path


@pytest.mark.parametrize("path", ["/ops/", "/ops/stream", "/ops/snapshot.json", "/metrics"])
def test_a_user_who_is_not_staff_gets_403(customer: Any, path: str) -> None:
    assert customer.get(path).status_code == 403


def test_staff_see_the_page_and_the_admin_index_links_to_it(staff: Any) -> None:
    page = staff.get("/ops/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Pipeline map" in body and 'id="ops-actions"' in body
    assert "ops/vendor/cytoscape.min.js" in body and "ops/vendor/cytoscape-dagre.min.js" in body
    assert 'href="/ops/"' in staff.get("/admin/").content.decode()


def test_metrics_refuse_anonymous_and_take_staff_or_the_token(client: Any, staff: Any) -> None:
    assert staff.get("/metrics").status_code == 200
    staff.logout()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 401  # no token set: no token works
    with override_settings(METRICS_TOKEN="s3cret-token"):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert scraped.status_code == 200
    assert "shop_queue_waiting" in scraped.content.decode()


# ---- the snapshot -------------------------------------------------------------------------


def published(kind: str, age_s: float, order_id: str = "") -> OutboxEvent:
    row = OutboxEvent.objects.create(kind=kind, order_id=order_id or uuid.uuid4().hex[:12])
    at = timezone.now() - timedelta(seconds=age_s)
    OutboxEvent.objects.filter(pk=row.pk).update(created_at=at, published_at=at)
    return row


@override_settings(OPS_STALE_SECONDS=30)
def test_a_queue_whose_oldest_message_is_too_old_is_flagged_and_the_others_are_not() -> None:
    published("shipment.created", age_s=45)  # orders, inventory and notifications each hold a copy
    published("order.ready", age_s=3)  # payments: young
    snap = snapshot.build_snapshot()
    queues = snap["queues"]
    assert queues["notifications"]["waiting"] == 1 and queues["notifications"]["oldest_age_s"] > 44
    assert queues["notifications"]["flagged"] and "oldest message waiting" in queues["notifications"]["flags"][0]
    # Young: not flagged for its age (on RabbitMQ it is for having no consumer, nobody runs one here).
    assert queues["payments"]["waiting"] == 1 and not any("oldest" in f for f in queues["payments"]["flags"])
    assert queues["fraud"]["waiting"] == 0 and not queues["fraud"]["flagged"]
    old = {"orders", "inventory", "notifications"}
    assert old <= set(snap["flagged"]) <= {*old, "payments"}
    assert snap["broker"]["source"] in ("rabbitmq", "filesystem")
    json.dumps(snap)  # JSON-able as it is


def test_a_paused_stage_names_who_holds_it_until_it_is_resumed() -> None:
    from shop.pipeline.models import QueuePause

    pause = QueuePause.objects.create(queue="notifications", paused_by="Grace Hopper", workers="notifications@host")
    row = snapshot.build_snapshot()["queues"]["notifications"]
    assert row["flagged"] and row["paused"].startswith("paused by Grace Hopper") and row["flags"][0] == row["paused"]
    assert not snapshot.build_snapshot()["queues"]["shipping"]["paused"]
    QueuePause.objects.filter(pk=pause.pk).update(resumed_by="Ada", resumed_at=pause.paused_at)
    row = snapshot.build_snapshot()["queues"]["notifications"]
    assert row["paused"] is None and not row["flagged"]


def test_in_out_rates_dead_letters_and_failures_come_from_the_records() -> None:
    row = published("order.placed", age_s=5)
    ProcessedMessage.objects.create(message_id=row.event_id, handler="orders.fraud.tasks.screen_order")
    DeadLetter.objects.create(task="inventory.tasks.reserve_stock", queue="inventory", message_id=str(row.event_id), error="boom")
    snap = snapshot.build_snapshot()
    assert snap["queues"]["fraud"]["in_per_s"] == snap["queues"]["fraud"]["out_per_s"] == round(1 / 60, 2)
    assert snap["queues"]["fraud"]["waiting"] == 0
    assert snap["queues"]["inventory"]["waiting"] == 0  # parked: waits for staff, not in the queue
    assert snap["queues"]["inventory"]["dead_letters"] == snap["queues"]["inventory"]["failures_5m"] == 1
    assert snap["dead_letters_by_task"] == {"inventory.tasks.reserve_stock": 1}
    assert snap["queues"]["payments"]["waiting"] == 1 and snap["queues"]["payments"]["out_per_s"] == 0
    assert snap["outbox"]["publish_per_s"] == round(1 / 60, 2)
    failure = snap["orders"]["failures"][0]
    assert failure["task"] == "reserve_stock" and failure["url"].startswith("/admin/pipeline/deadletter/")


def test_stage_latencies_are_read_from_the_timeline() -> None:
    order = "lat-" + uuid.uuid4().hex[:8]
    placed = published("order.placed", age_s=10, order_id=order)
    published("fraud.cleared", age_s=9.75, order_id=order)
    snap = snapshot.build_snapshot()
    fraud = snap["stages"]["fraud screening"]
    assert fraud["n"] == 1 and 200 <= fraud["p50_ms"] <= 300 and fraud["p95_ms"] == fraud["p50_ms"]
    assert snap["stages"]["payment authorisation"]["n"] == 0
    assert placed.kind == "order.placed"


@override_settings(OPS_STUCK_SECONDS=60)
def test_stuck_orders_name_the_stage_they_wait_on_and_reviews_their_deadline(catalog: dict[str, int], shop_api: Any) -> None:
    from orders.fraud.models import FraudCheck
    from orders.models import Order

    stuck = shop_api.place(sku="SKU-1")["id"]
    fresh = shop_api.place(sku="SKU-1")["id"]
    Order.objects.filter(public_id=stuck).update(updated_at=timezone.now() - timedelta(seconds=90))
    Order.objects.filter(public_id=stuck).update(fraud_cleared_at=timezone.now())
    deadline = timezone.now() + timedelta(seconds=100)
    FraudCheck.objects.create(
        order_id=fresh, email="a@example.com", amount=10, score=70, decision="review", review_deadline=deadline
    )
    orders = snapshot.build_snapshot()["orders"]
    assert [s["order"] for s in orders["stuck"]] == [stuck]
    assert orders["stuck"][0]["waiting_on"] == "payments, inventory" and orders["stuck"][0]["url"].startswith(
        "/admin/orders/order/"
    )
    assert orders["by_status"]["placed"] == 2 and orders["by_status"]["delivered"] == 0
    assert orders["reviews"][0]["order"] == fresh and 95 < orders["reviews"][0]["left_s"] <= 100


# ---- the map ------------------------------------------------------------------------------


def test_the_map_has_every_subscription_of_the_pipeline_map() -> None:
    drawn = graph.map_graph()
    edges = {(e["data"]["event"], e["data"]["task"]) for e in drawn["edges"] if e["data"]["kind"] == "subscription"}
    assert edges == {(s.event, s.task) for s in PIPELINE}
    tasks = {n["data"]["task"]: n["data"]["queue"] for n in drawn["nodes"] if n["data"]["kind"] == "task"}
    assert tasks == {s.task: s.queue for s in PIPELINE}


def test_the_layout_hints_name_only_known_events_and_real_tasks() -> None:
    for source, emitted in graph.EMITS.items():
        if source != graph.CHECKOUT:
            importlib.import_module(source.rsplit(".", 1)[0])
            assert source in app.tasks, source
        assert set(emitted) <= events.known_events(), source


def test_a_subscription_added_to_the_map_is_drawn_with_no_other_change(staff: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    added = Subscription("payment.captured", "loyalty.tasks.award_points", "loyalty")
    monkeypatch.setattr(events, "PIPELINE", (*PIPELINE, added))
    page = staff.get("/ops/").content.decode()
    start = page.index('<script id="ops-graph" type="application/json">') + len('<script id="ops-graph" type="application/json">')
    drawn = json.loads(page[start : page.index("</script>", start)])
    node = next(n["data"] for n in drawn["nodes"] if n["data"]["id"] == "task:loyalty.tasks.award_points")
    assert node["queue"] == "loyalty" and node["label"] == "award_points"
    edge = next(e["data"] for e in drawn["edges"] if e["data"]["id"] == "sub:payment.captured->loyalty.tasks.award_points")
    assert edge["source"] == "event:payment.captured"


# ---- the stream ---------------------------------------------------------------------------


@override_settings(OPS_STREAM_SECONDS=2.5)
def test_the_stream_sends_snapshots_as_data_events_and_ends(staff: Any) -> None:
    response = staff.get("/ops/stream")
    assert response["Content-Type"] == "text/event-stream" and response.streaming
    chunks = [c.decode() for c in response.streaming_content]  # ends by itself: the lifetime is bounded
    events_sent = [c for c in chunks if c.startswith("id: ")]
    assert 2 <= len(events_sent) <= 3
    data = json.loads(events_sent[0].split("data: ", 1)[1])
    assert set(data["queues"]) == set(events.QUEUES)
    assert chunks[-1].startswith("event: end")


def test_the_stream_gives_its_connection_back_after_each_read_and_when_closed() -> None:
    stream = sse_events(lifetime_s=60, interval_s=0.01)
    assert next(stream).startswith("retry:")
    assert next(stream).startswith("id: 1")
    assert connection.connection is None, "no connection held between two events"
    next(stream)
    stream.close()  # what the server does when the client went away
    assert connection.connection is None
    with pytest.raises(StopIteration):
        next(stream)


def test_the_polling_fallback_answers_the_same_snapshot(staff: Any) -> None:
    response = staff.get("/ops/snapshot.json")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert set(response.json()) >= {"queues", "subscriptions", "stages", "outbox", "orders", "broker", "sources"}


# ---- /metrics -----------------------------------------------------------------------------


def metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels`` (0 when there are none)."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line.split("}", 1)[0] for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_checkout_latency_is_a_histogram_of_every_answer(staff: Any, catalog: dict[str, int], shop_api: Any) -> None:
    """Counted by the web process that answered, whatever the answer: a 201 and a refusal both."""
    name = "shop_checkout_latency_seconds_count"
    before = staff.get("/metrics").content.decode()
    shop_api.place(sku="SKU-1")
    refused = staff.post("/api/orders", data="{}", content_type="application/json")
    assert refused.status_code == 422
    after = staff.get("/metrics").content.decode()
    assert samples(after, name, endpoint="api", code="201") == samples(before, name, endpoint="api", code="201") + 1
    assert samples(after, name, endpoint="api", code="422") == samples(before, name, endpoint="api", code="422") + 1
    inf = samples(after, "shop_checkout_latency_seconds_bucket", endpoint="api", code="201", le="+Inf")
    assert inf == samples(after, name, endpoint="api", code="201")  # buckets are cumulative up to +Inf


def test_only_the_shops_own_families_are_read_from_the_shared_files(staff: Any) -> None:
    """Flower loads the tasks too, so its own counters land in the directory: not the shop's figures."""
    from prometheus_client import Counter

    from shop.pipeline.latency_metrics import multiprocess_dir

    assert multiprocess_dir() is not None  # tests/settings.py: the run's own directory
    Counter("flower_like_events", "a process's own counter", registry=None).inc()
    scraped = staff.get("/metrics").content.decode()
    assert "flower_like_events" not in scraped and "shop_queue_waiting" in scraped


def test_metrics_change_after_orders_are_placed(staff: Any, catalog: dict[str, int], shop_api: Any) -> None:
    before = staff.get("/metrics").content.decode()
    assert metric(before, 'shop_orders{status="placed"}') == 0
    for _ in range(3):
        shop_api.place(sku="SKU-1")
    snapshot.forget()
    after = staff.get("/metrics").content.decode()
    assert metric(after, 'shop_orders{status="placed"}') == 3
    assert metric(after, "shop_outbox_waiting") == 3  # no relay running: all three wait in the outbox
    assert metric(after, "shop_outbox_oldest_age_seconds") >= 0
    assert 'shop_queue_waiting{queue="payments"}' in after


@pytest.mark.rabbitmq
def test_retries_waiting_for_their_delay_are_counted_from_rabbitmqs_delay_queues() -> None:
    from kombu import Connection
    from kombu.transport.native_delayed_delivery import (
        MAX_LEVEL,
        calculate_routing_key,
        declare_native_delayed_delivery_exchanges_and_queues,
        level_name,
    )

    from shop.ops import queues

    with Connection(app.conf.broker_url) as conn:
        declare_native_delayed_delivery_exchanges_and_queues(conn, "quorum")
        queues._delays_absent_until = 0.0
        before = snapshot.build_snapshot()["broker"]["retries_waiting"]
        # What Celery publishes for a retry with an 8 s countdown (routed nowhere once its delay is over).
        key = calculate_routing_key(8, "ops-test-nowhere")
        conn.Producer().publish({"retry": 1}, exchange=level_name(MAX_LEVEL), routing_key=key, serializer="json")
    wait_until(lambda: snapshot.build_snapshot()["broker"]["retries_waiting"] > before, 10, 0.2, "the retry to be counted")


@override_settings(OPS_STALE_SECONDS=30)
def test_a_stage_stalled_for_longer_than_the_pipelines_ten_minutes_stays_flagged() -> None:
    published("order.ready", age_s=1800)  # half an hour: outside backlog.py's default window
    snapshot.current_snapshot()
    row = snapshot.current_snapshot(max_age_s=0)["queues"]["payments"]  # the shared, tracked read
    assert row["waiting"] == 1 and row["oldest_age_s"] > 1790 and row["flagged"]
