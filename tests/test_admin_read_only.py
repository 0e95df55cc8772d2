"""The admin shows what the pipeline wrote and lets nobody rewrite it: orders, fraud checks,
payments, gateway transactions, outbox events and dead letters have no add, save or delete;
an order's page opens on its timeline and its lines say what they are; fault switches are the
known ones with their meaning, default and value in force; fraud reasons read as sentences."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.utils.html import escape

from orders.fraud.admin import reasons_as_sentences
from orders.fraud.models import FraudCheck
from orders.models import OrderLine
from shop.pipeline import faults
from shop.pipeline.models import DeadLetter, FaultSetting, OutboxEvent
from shop.storefront.checkout import CheckoutRequest, place
from tests.fixtures import order_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]

READ_ONLY = [
    "orders/order",
    "fraud/fraudcheck",
    "payments/payment",
    "payments/gatewaytransaction",
    "pipeline/outboxevent",
    "pipeline/deadletter",
    "pipeline/queuepause",
]


@pytest.fixture
def staff(client: Any, django_user_model: Any) -> Any:
    client.force_login(django_user_model.objects.create_superuser("admin-reader", password="x" * 20))
    return client


@pytest.fixture
def order(catalog: Any) -> Any:
    body = order_body(email=f"{uuid.uuid4().hex[:10]}@example.com")
    placed, _ = place(CheckoutRequest(body["email"], body["name"], body["address"], body["items"], body["card"]))
    return placed


@pytest.mark.parametrize("model", READ_ONLY)
def test_pipeline_records_cannot_be_added_from_the_admin(staff: Any, model: str) -> None:
    assert staff.get(f"/admin/{model}/add/").status_code == 403
    listing = staff.get(f"/admin/{model}/")
    assert listing.status_code == 200, model
    assert f'href="/admin/{model}/add/"' not in listing.content.decode()


def test_an_order_page_opens_on_its_timeline_and_has_no_save_or_delete(staff: Any, order: Any) -> None:
    page = staff.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert 'name="_save"' not in page and "/delete/" not in page
    assert page.index("Timeline") < page.index(order.email), "the timeline comes before the order's fields"
    assert "order.placed" in page
    assert staff.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"}).status_code == 403
    line = OrderLine.objects.filter(order=order).first()
    assert str(line) == f"{line.quantity} x {line.name} ({line.sku}) at {line.unit_price}"
    assert "OrderLine object" not in page


def test_outbox_rows_and_dead_letters_are_shown_not_editable(staff: Any, order: Any) -> None:
    event = OutboxEvent.objects.filter(order_id=order.public_id).first()
    page = staff.get(f"/admin/pipeline/outboxevent/{event.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    letter = DeadLetter.objects.create(task="t", queue="q", message_id="m", order_id=order.public_id, error="e")
    assert staff.post(f"/admin/pipeline/deadletter/{letter.pk}/change/", {"status": "replayed"}).status_code == 403
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.PARKED


def test_fault_switches_are_the_known_ones_with_meaning_default_and_value(staff: Any, settings: Any) -> None:
    settings.FAULTS_ENABLED = True
    faults.clear_cache()
    FaultSetting.objects.create(name="gateway_latency_ms", value="250")
    try:
        page = staff.get("/admin/pipeline/faultsetting/").content.decode()
        for name, meaning in faults.SWITCHES.items():
            assert f"<code>{name}</code>" in page and escape(meaning) in page, name
        assert "<strong>250</strong> (overridden)" in page
        form = staff.get("/admin/pipeline/faultsetting/add/").content.decode()
        assert '<select name="name"' in form and "gateway_failure_rate: Share of gateway calls" in form
        refused = staff.post("/admin/pipeline/faultsetting/add/", {"name": "gatway_latency_ms", "value": "1"})
        assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
        assert not FaultSetting.objects.filter(name="gatway_latency_ms").exists()
    finally:
        faults.clear_cache()


def test_fraud_reasons_read_as_sentences(staff: Any, order: Any) -> None:
    assert reasons_as_sentences(["velocity: 6 orders in 10 min", "amount over 1000."]) == (
        "Velocity: 6 orders in 10 min. Amount over 1000."
    )
    assert reasons_as_sentences([]) == "No risk signals."
    FraudCheck.objects.update_or_create(
        order_id=order.public_id,
        defaults={
            "email": order.email,
            "amount": order.total,
            "score": 70,
            "decision": "review",
            "reasons": ["card country differs"],
        },
    )
    page = staff.get("/admin/fraud/fraudcheck/").content.decode()
    assert "Card country differs." in page and "[&quot;" not in page
