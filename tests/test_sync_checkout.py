"""The synchronous checkout (``POST /api/checkout/sync``): the steps run inside the request,
through the same services and idempotent-consumer records as the workers, whose later copies
of the message change nothing; off, the endpoint is not there."""

from __future__ import annotations

import json

import pytest

from inventory.models import HoldStatus, StockHold, StockItem
from inventory.tasks import reserve_stock
from orders.fraud.models import FraudCheck
from orders.fraud.tasks import screen_order
from orders.models import Order
from orders.payments.models import GatewayTransaction, Payment, PaymentStatus
from orders.payments.tasks import authorize_payment
from shop.pipeline.models import OutboxEvent, ProcessedMessage
from shop.pipeline.task_messages import messages_for
from tests.fixtures import CARD_DECLINED, CARD_TIMEOUT, counts, new_key, order_body
from tests.harness import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]

PATH = "/api/checkout/sync"
STEP_TASKS = {t.name: t for t in (authorize_payment, screen_order, reserve_stock)}


@pytest.fixture
def enabled(settings) -> None:
    settings.SYNC_CHECKOUT_ENABLED = True


def post(client, body, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(PATH, json.dumps(body), content_type="application/json", **headers)


def placed_event(order_id: str) -> OutboxEvent:
    return OutboxEvent.objects.get(order_id=order_id, kind="order.placed")


def kinds(order_id: str) -> list[str]:
    return list(OutboxEvent.objects.filter(order_id=order_id).order_by("id").values_list("kind", flat=True))


def authorizations(order_id: str) -> int:
    return GatewayTransaction.objects.filter(reference=order_id, operation="authorize").count()


def test_off_it_answers_404_before_reading_the_body_and_writes_nothing(client, catalog, settings):
    settings.SYNC_CHECKOUT_ENABLED = False
    before = counts()
    for body in (order_body(), {"not": "an order"}):
        response = post(client, body, key=new_key())
        assert response.status_code == 404, response.content
        assert "SYNC_CHECKOUT_ENABLED" in response.json()["error"]
    assert counts() == before
    assert post(client, order_body()).status_code == 404
    assert client.post("/api/orders", json.dumps(order_body()), content_type="application/json").status_code == 201


def test_the_answer_comes_after_payment_fraud_and_stock_and_the_workers_copies_change_nothing(client, catalog, enabled):
    response = post(client, order_body(sku="SKU-2", quantity=2), key=new_key())

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["payment"], body["fraud"], body["stock"], body["reason"]) == ("authorized", "cleared", "reserved", None)
    assert body["status"] == "placed"  # the orders join moves it on, from the events, as for any order
    assert body["status_url"].endswith(f"/api/orders/{body['id']}")
    order_id = body["id"]
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.status, payment.attempts, authorizations(order_id)) == (PaymentStatus.AUTHORIZED, 1, 1)
    assert FraudCheck.objects.get(order_id=order_id).decision == "approve"
    assert StockHold.objects.get(order_id=order_id).status == HoldStatus.HELD
    assert StockItem.objects.get(sku="SKU-2").available == 3
    event = placed_event(order_id)
    handlers = set(ProcessedMessage.objects.filter(message_id=event.event_id).values_list("handler", flat=True))
    assert handlers == set(STEP_TASKS)
    assert kinds(order_id) == ["order.placed", "stock.reserved", "fraud.cleared", "payment.authorized"]

    # The relay publishes order.placed as usual; the steps' tasks run on exactly those messages.
    before = counts()
    row = {f: getattr(event, f) for f in ("id", "event_id", "kind", "order_id", "payload", "target_task")}
    for task_name, _queue, message_id, kwargs in messages_for(row):
        if task_name in STEP_TASKS:
            STEP_TASKS[task_name].apply(kwargs=kwargs, task_id=message_id).get()
    payment.refresh_from_db()
    assert (payment.status, payment.attempts, authorizations(order_id)) == (PaymentStatus.AUTHORIZED, 1, 1)
    assert FraudCheck.objects.filter(order_id=order_id).count() == 1
    assert StockItem.objects.get(sku="SKU-2").available == 3
    assert counts() == before
    assert kinds(order_id) == ["order.placed", "stock.reserved", "fraud.cleared", "payment.authorized"]


def test_a_declined_card_is_answered_as_declined(client, catalog, enabled):
    response = post(client, order_body(card=CARD_DECLINED), key=new_key())

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["payment"], body["reason"]) == ("declined", "your card was declined")
    assert Payment.objects.get(order_id=body["id"]).status == PaymentStatus.DECLINED
    assert "payment.declined" in kinds(body["id"])
    assert "card_declined" not in response.content.decode()  # the gateway's code stays with staff


def test_the_same_key_replays_the_order_without_a_second_authorisation(client, catalog, enabled):
    key = new_key()
    first, second = post(client, order_body(), key=key), post(client, order_body(), key=key)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert Order.objects.count() == 1
    assert authorizations(first.json()["id"]) == 1
    assert Payment.objects.get(order_id=first.json()["id"]).attempts == 1
    before = counts()
    other = post(client, order_body(quantity=2), key=key)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["fields"]
    assert counts() == before


def test_a_gateway_outage_answers_503_with_the_order_and_the_same_key_resumes_it(client, catalog, enabled, fault):
    from shop.pipeline import faults
    from shop.pipeline.models import FaultSetting

    key = new_key()
    fault("gateway_failure_rate", "1")
    response = post(client, order_body(), key=key)

    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "2"
    body = response.json()
    order_id = body["id"]
    assert "retried" in body["error"]
    assert (body["payment"], body["fraud"], body["stock"]) == ("pending", "cleared", "reserved")
    assert "503 Service Unavailable" not in response.content.decode()  # the gateway's words stay in the log
    # Nothing is lost: the order and its event stand; the payment is left for its worker to resume.
    assert Order.objects.filter(public_id=order_id).exists()
    assert Payment.objects.get(order_id=order_id).status == PaymentStatus.AUTHORIZING
    handlers = set(ProcessedMessage.objects.filter(message_id=placed_event(order_id).event_id).values_list("handler", flat=True))
    assert handlers == {screen_order.name, reserve_stock.name}

    FaultSetting.objects.all().delete()
    faults.clear_cache()
    again = post(client, order_body(), key=key)

    assert again.status_code == 201, again.content
    assert (again.json()["id"], again.json()["payment"]) == (order_id, "authorized")
    assert Order.objects.count() == 1
    assert authorizations(order_id) == 1


def test_the_workers_take_over_and_every_order_ends(client, catalog, enabled, request):
    """With the relay and workers started only after the answers: the steps done in the request
    are not done again, and the ones a gateway error left are finished by the workers."""
    from shop.pipeline import faults

    ok = post(client, order_body(), key=new_key()).json()
    declined = post(client, order_body(card=CARD_DECLINED), key=new_key()).json()
    timing_out = post(client, order_body(card=CARD_TIMEOUT), key=new_key())
    assert timing_out.status_code == 503
    faults.set_switch("gateway_failure_rate", "1")
    faults.clear_cache()
    outage = post(client, order_body(), key=new_key())
    assert outage.status_code == 503
    faults.set_switch("gateway_failure_rate", "0")
    faults.clear_cache()
    ids = {"ok": ok["id"], "declined": declined["id"], "timeout": timing_out.json()["id"], "outage": outage.json()["id"]}

    pipeline = request.getfixturevalue("pipeline")
    statuses = pipeline.wait_terminal(list(ids.values()))

    assert statuses == {
        ids["ok"]: "delivered",
        ids["declined"]: "cancelled",
        ids["timeout"]: "cancelled",
        ids["outage"]: "delivered",
    }
    for name in ("ok", "declined", "outage"):
        assert authorizations(ids[name]) == 1, name
        assert kinds(ids[name]).count("order.placed") == 1
    assert Payment.objects.get(order_id=ids["ok"]).attempts == 1  # the worker's copy stopped at the record
    assert kinds(ids["ok"]).count("payment.authorized") == 1
    # The cancellation's void runs after the order is cancelled.
    wait_until(lambda: Payment.objects.get(order_id=ids["timeout"]).status == PaymentStatus.VOIDED, 30, what="the void")
    assert client.get(f"/api/orders/{ids['declined']}").json()["reason"] == "your card was declined"


def test_with_the_workers_running_alongside_each_order_is_authorised_once(client, catalog, enabled, pipeline):
    """As in the demo and the benchmark: the relay publishes order.placed as the request commits,
    so a worker's copy may run while the request is still doing the same step."""
    ids = []
    for i in range(6):  # one customer each: six orders from one email in minutes would go to review
        response = post(client, order_body(email=f"customer{i}@example.com"), key=new_key())
        assert response.status_code == 201, response.content
        assert response.json()["payment"] == "authorized"
        ids.append(response.json()["id"])

    assert set(pipeline.wait_terminal(ids).values()) == {"delivered"}
    for order_id in ids:
        assert authorizations(order_id) == 1
        assert kinds(order_id).count("payment.authorized") == 1
        assert kinds(order_id).count("stock.reserved") == 1
        assert FraudCheck.objects.filter(order_id=order_id).count() == 1


def test_the_schema_documents_the_endpoint_its_switch_and_its_503(client):
    operation = client.get("/api/openapi.json").json()["paths"][PATH]["post"]
    assert {"201", "404", "422", "503"} <= set(operation["responses"])
    assert "SYNC_CHECKOUT_ENABLED" in operation["description"]
