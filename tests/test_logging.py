"""Logs: structlog lines that carry the request id; JSON with ``LOG_FORMAT=json``; routine polls at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from django.conf import settings

from tests.fixtures import order_body

pytestmark = pytest.mark.django_db(transaction=True)


def formatter(name: str) -> logging.Formatter:
    """The formatter ``LOGGING`` defines under ``name``, built as dictConfig builds it."""
    options = {key: value for key, value in settings.LOGGING["formatters"][name].items() if key != "()"}
    return settings.LOGGING["formatters"][name]["()"](**options)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log record at DEBUG and above, rendered by the JSON formatter, one line each."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter("json"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_a_request_with_x_request_id_logs_json_lines_with_that_id(client, catalog, json_log):
    response = client.post(
        "/api/orders",
        data=order_body(),
        content_type="application/json",
        headers={"Idempotency-Key": "log-test-1", "X-Request-ID": "req-log-test-42"},
    )
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "req-log-test-42"
    order_id = response.json()["id"]
    client.get(f"/api/orders/{order_id}", headers={"X-Request-ID": "req-log-test-43"})

    records = lines(json_log)
    finished = [r for r in records if r.get("event") == "request_finished"]
    assert any(r["request_id"] == "req-log-test-42" and r["request"] == "POST /api/orders" for r in finished), records
    assert any(r["request_id"] == "req-log-test-43" and order_id in r["request"] for r in finished), records
    assert all(r["request_id"] in ("req-log-test-42", "req-log-test-43") for r in records if "request_id" in r)


def test_a_forged_request_id_is_replaced_in_the_logs_too(client, catalog, json_log):
    response = client.get("/api/products", headers={"X-Request-ID": "bad id with spaces"})
    assert response.status_code == 200
    issued = response["X-Request-ID"]
    assert issued != "bad id with spaces"
    finished = [r for r in lines(json_log) if r.get("event") == "request_finished"]
    assert [r["request_id"] for r in finished] == [issued]


def test_standard_library_lines_keep_their_order_id_and_the_request_id():
    from shop.pipeline.request_context import bind_request_id, reset_request_id

    record = logging.LogRecord("shop.pipeline", logging.INFO, __file__, 1, "%s for order %s", ("payment", "ord-7"), None)
    token = bind_request_id("req-7")
    try:
        line = json.loads(formatter("json").format(record))
    finally:
        reset_request_id(token)
    assert line["event"] == "payment for order ord-7"
    assert line["request_id"] == "req-7"
    assert line["level"] == "info"


def test_routine_beat_work_is_demoted_to_debug():
    from shop.pipeline.request_context import RoutineWorkFilter

    def passes(name: str, msg: str, *args: object) -> bool:
        return RoutineWorkFilter().filter(logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None))

    assert not passes("celery.beat", "Scheduler: Sending due task %s (%s)", "carrier-tracking", "shipping.tasks.poll_carrier")
    assert not passes("celery.app.trace", "Task shipping.tasks.poll_carrier[abc] succeeded in 0.01s: 0")
    assert passes("shop.pipeline", "%s: %s for order %s (attempt %d)", "payments.tasks.authorize", "order.placed", "o-1", 1)


def test_the_context_sent_with_tasks_names_the_validated_request_id(rf):
    """django-structlog's own context (what it puts in published task headers) uses our id, not its uuid."""
    from django_structlog.middlewares import RequestMiddleware

    from shop.middleware import RequestIdMiddleware

    seen: dict[str, object] = {}

    def view(request):
        from django.http import HttpResponse

        seen.update(structlog.contextvars.get_contextvars())
        return HttpResponse("ok")

    request = rf.get("/api/products", headers={"X-Request-ID": "req-ctx-9"})
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    RequestIdMiddleware(RequestMiddleware(view))(request)
    assert seen["request_id"] == "req-ctx-9"


@pytest.mark.pipeline
def test_worker_and_relay_lines_are_json_with_the_checkout_request_id(client, catalog, without_shared_pipeline, tmp_path):
    """One id from the checkout request into every worker's JSON log lines, which name the order."""
    from orders.models import TERMINAL, Order
    from tests import harness

    worker = harness.worker(tmp_path, name="json-logs", LOG_FORMAT="json")
    relay = harness.relay(tmp_path, name="relay-json-logs", LOG_FORMAT="json", LOG_LEVEL="DEBUG")
    try:
        response = client.post(
            "/api/orders",
            data=order_body(),
            content_type="application/json",
            headers={"Idempotency-Key": "log-test-pipeline", "X-Request-ID": "req-pipeline-77"},
        )
        assert response.status_code == 201, response.content
        order_id = response.json()["id"]
        harness.wait_until(
            lambda: Order.objects.get(public_id=order_id).status in TERMINAL, 120, interval=0.3, what="the order to finish"
        )
        records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
        mine = [r for r in records if r.get("request_id") == "req-pipeline-77"]
        assert any(order_id in r["event"] for r in mine), worker.log()[-5000:]
        assert {r["logger"] for r in mine} >= {"shop.pipeline"}, mine
        published = [json.loads(line) for line in relay.log().splitlines() if line.startswith("{")]
        assert any(r.get("request_id") == "req-pipeline-77" and r["event"] == "task_enqueued" for r in published), relay.log()
    finally:
        worker.stop()
        relay.stop()
