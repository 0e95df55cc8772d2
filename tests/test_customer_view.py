"""The customer sees only what is theirs: no fraud scores or rules, no staff names, no internal errors.

Orders go through the real pipeline (fraud rules with a score, a staff decision,
a dead letter parked on the order); the public API and the order page must not
show any of it, while the admin still does.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from inventory.services import stock_receive
from notifications.models import SentEmail
from orders.fraud.models import FraudCheck
from orders.fraud.services import fraud_decide
from orders.models import Order
from shop.pipeline import deadletters
from shop.pipeline.models import OutboxEvent
from shop.storefront.models import Product
from tests.harness import wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

REVIEWER = "reviewer-grace-h7"
DEAD_LETTER_ERROR = "OperationalError: connection to carrier-db-7 refused (internal-marker-q9z)"


def customer_outputs(client, public_id: str) -> str:
    """Everything a customer can fetch about the order: the API JSON and the HTML page."""
    api = client.get(f"/api/orders/{public_id}")
    page = client.get(f"/orders/{public_id}")
    assert api.status_code == page.status_code == 200
    return json.dumps(api.json()) + page.content.decode()


def wait_review(public_id: str) -> FraudCheck:
    wait_until(lambda: Order.objects.filter(public_id=public_id, status="review").exists(), 60, what="the fraud review")
    return FraudCheck.objects.get(order_id=public_id)


def secrets_of(public_id: str) -> list[str]:
    """The staff-only details of the order: score, rule reasons, staff texts that carry them."""
    check = FraudCheck.objects.get(order_id=public_id)
    staff_texts = OutboxEvent.objects.filter(order_id=public_id, kind__startswith="fraud.").values_list("message", flat=True)
    return [f"score {check.score}", "score", *check.reasons, *staff_texts, REVIEWER, "parked", DEAD_LETTER_ERROR]


def test_staff_only_details_never_reach_the_public_api_or_page(pipeline, shop_api, client):
    Product.objects.create(sku="SKU-BIG", name="Grand piano", price=Decimal("1200.00"), currency="GBP")
    stock_receive(sku="SKU-BIG", quantity=5)
    staff = get_user_model().objects.create_superuser(REVIEWER, "grace@shop.example", "a-long-test-password-1")

    # A disposable domain scores a review; with a high amount it is rejected outright.
    approved = shop_api.place(email="ann@mailinator.com")["id"]
    rejected_by_staff = shop_api.place(email="bob@mailinator.com")["id"]
    rejected_by_rules = shop_api.place(email="cy@mailinator.com", sku="SKU-BIG")["id"]
    wait_review(approved)
    wait_review(rejected_by_staff)
    assert fraud_decide(order_id=approved, approve=True, user=staff)
    assert fraud_decide(order_id=rejected_by_staff, approve=False, user=staff)
    with_letter = approved
    deadletters.park(
        task="shipping.tasks.create_shipment", queue="shipping", message_id="m-1", order_id=with_letter,
        kwargs={"order_id": with_letter}, error=DEAD_LETTER_ERROR, attempts=3,
    )  # fmt: skip
    statuses = pipeline.wait_terminal([approved, rejected_by_staff, rejected_by_rules], timeout=120)
    assert statuses == {approved: "delivered", rejected_by_staff: "cancelled", rejected_by_rules: "cancelled"}

    for public_id in (approved, rejected_by_staff, rejected_by_rules):
        shown = customer_outputs(client, public_id)
        for secret in secrets_of(public_id):
            assert secret not in shown, f"{secret!r} shown to the customer of {public_id}"
        assert Order.objects.get(public_id=public_id).cancel_reason not in shown or public_id == approved
        emailed = " ".join(SentEmail.objects.filter(order_id=public_id).values_list("body", flat=True))
        assert emailed, f"no email for {public_id}"
        for secret in secrets_of(public_id):
            assert secret not in emailed, f"{secret!r} emailed to the customer of {public_id}"
        assert Order.objects.get(public_id=public_id).cancel_reason not in emailed or public_id == approved

    api = client.get(f"/api/orders/{rejected_by_staff}").json()
    assert api["reason"] == "we could not accept this order"
    assert api["timeline"][0] == {"at": api["timeline"][0]["at"], "kind": "order.placed", "message": "We received your order."}
    assert "order.flagged" not in [e["kind"] for e in client.get(f"/api/orders/{with_letter}").json()["timeline"]]

    # Staff still see all of it.
    client.force_login(staff)
    admin_page = client.get(f"/admin/orders/order/{Order.objects.get(public_id=with_letter).pk}/change/").content.decode()
    check = FraudCheck.objects.get(order_id=with_letter)
    assert f"score {check.score}" in admin_page
    assert f"approved by {REVIEWER}" in admin_page
    assert "parked for replay" in admin_page
    assert DEAD_LETTER_ERROR in client.get("/admin/pipeline/deadletter/").content.decode()
    rejected_admin = client.get(f"/admin/orders/order/{Order.objects.get(public_id=rejected_by_rules).pk}/change/")
    assert "disposable email domain" in rejected_admin.content.decode()


def _event(kind: str, message: str = "staff text", **payload: str) -> OutboxEvent:
    from django.utils import timezone

    return OutboxEvent(kind=kind, order_id="x", message=message, payload=payload, created_at=timezone.now())


def test_a_kind_without_a_customer_text_is_hidden():
    from shop.storefront.timeline import customer_timeline

    events = [_event("order.placed"), _event("loyalty.points_added", "internal: tier gold"), _event("order.flagged")]
    assert [(e.kind, e.message) for e in customer_timeline(events)] == [("order.placed", "We received your order.")]


def test_the_customer_reason_names_the_failed_step_never_the_staff_reason():
    from shop.storefront.timeline import DEFAULT_CANCEL_REASON, customer_reason

    staff = "rejected by fraud review (reviewer-grace-h7)"
    rejected = [_event("fraud.rejected", staff), _event("order.cancelled", staff)]
    assert customer_reason(rejected) == "we could not accept this order"
    assert customer_reason([_event("payment.declined"), _event("order.cancelled")]) == "your card was declined"
    assert customer_reason([_event("something.new"), _event("order.cancelled")]) == DEFAULT_CANCEL_REASON
    assert customer_reason([_event("order.placed")]) is None


def test_only_whitelisted_payload_fields_reach_a_customer_text():
    from shop.storefront.timeline import customer_text

    shipped = _event("order.shipped", "Shipped", tracking_number="TRK123", carrier_note="{score}")
    assert customer_text(shipped) == "Shipped: tracking number TRK123."
