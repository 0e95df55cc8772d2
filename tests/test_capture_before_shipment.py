"""The money is captured before the parcel is handed to the carrier, and a failed capture cancels cleanly.

``order.ready`` starts only the capture; ``payment.captured`` moves the order to
"paid" and buys the label. A declined capture (a test card, or an authorisation
that expired during a long fraud review) cancels the order while no parcel exists.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from django.utils import timezone

from inventory.models import StockItem
from notifications.models import MailboxMessage
from orders import services as orders
from orders.fraud.services import fraud_decide
from orders.models import Order
from orders.payments import services as payments
from orders.payments.models import GatewayTransaction, Payment
from shipping import services as shipping
from shipping.models import CarrierParcel, Shipment
from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.proof import audit
from shop.storefront.checkout import CheckoutRequest, place
from tests import harness
from tests.fixtures import order_body

CARD_CAPTURE_DECLINED = "4000000000000341"


def new_order(**kw) -> Order:
    body = order_body(email=f"{uuid.uuid4().hex[:10]}@example.com", **kw)
    order, _ = place(CheckoutRequest(body["email"], body["name"], body["address"], body["items"], body["card"]))
    return order


def event() -> str:
    return str(uuid.uuid4())


def kinds(order_id: str) -> list[str]:
    return list(OutboxEvent.objects.filter(order_id=order_id).order_by("id").values_list("kind", flat=True))


def approved_ops(order_id: str) -> dict[str, int]:
    ops: dict[str, int] = {}
    for op in GatewayTransaction.objects.filter(reference=order_id, approved=True).values_list("operation", flat=True):
        ops[op] = ops.get(op, 0) + 1
    return ops


def parcels(order_id: str) -> list[str]:
    return list(CarrierParcel.objects.filter(idempotency_key=f"label-{order_id}").values_list("tracking_number", flat=True))


def findings(order_id: str) -> list[str]:
    return [str(f) for f in audit.run().violations if f.order_id == order_id]


def make_ready(order: Order) -> None:
    for kind in ("payment.authorized", "fraud.cleared", "stock.reserved"):
        orders.order_apply_event(event_id=event(), kind=kind, order_id=order.public_id, payload={})
    assert Order.objects.get(pk=order.pk).status == "ready"


def assert_cancelled_without_a_parcel(order_id: str, reason: str, sku: str, stock: int) -> None:
    order = Order.objects.get(public_id=order_id)
    assert order.status == "cancelled"
    assert reason in order.cancel_reason
    assert parcels(order_id) == [], "a parcel was handed to the carrier for money that was not captured"
    assert "shipment.created" not in kinds(order_id)
    assert approved_ops(order_id) == {"authorize": 1, "void": 1}
    assert Payment.objects.get(order_id=order_id).status == "voided"
    item = StockItem.objects.get(sku=sku)
    assert (item.available, item.reserved, item.shipped) == (stock, 0, 0)
    assert sorted(MailboxMessage.objects.filter(order_id=order_id).values_list("kind", flat=True)) == ["cancelled", "received"]
    assert findings(order_id) == []


# ---- Real workers ------------------------------------------------------------------------------


@pytest.mark.pipeline
@pytest.mark.django_db(transaction=True)
def test_a_declined_capture_cancels_the_order_before_any_parcel_exists(pipeline, shop_api):
    order = shop_api.place(sku="SKU-2", quantity=2, card=CARD_CAPTURE_DECLINED)

    assert pipeline.wait_terminal([order["id"]], timeout=90) == {order["id"]: "cancelled"}
    pipeline.wait_quiet()
    assert_cancelled_without_a_parcel(order["id"], "capture declined", "SKU-2", 5)
    # This order's: the shared broker may still hand back a message an earlier test's stopped
    # worker held (the embedded broker parks it after its delivery limit), with an order of its own.
    mine = DeadLetter.objects.filter(order_id=order["id"])
    assert not mine.exists(), list(DeadLetter.objects.values("task", "order_id", "error", "attempts"))


@pytest.mark.pipeline
@pytest.mark.django_db(transaction=True)
def test_the_parcel_is_handed_over_only_after_the_capture(pipeline, shop_api):
    ids = [shop_api.place(sku="SKU-1")["id"] for _ in range(3)]

    assert set(pipeline.wait_terminal(ids, timeout=90).values()) == {"delivered"}
    for order_id in ids:
        timeline = kinds(order_id)
        assert timeline.index("order.ready") < timeline.index("payment.captured") < timeline.index("shipment.created")
        captured = GatewayTransaction.objects.get(reference=order_id, operation="capture", approved=True)
        assert CarrierParcel.objects.get(idempotency_key=f"label-{order_id}").created_at > captured.created_at
        assert findings(order_id) == []


@pytest.mark.pipeline
@pytest.mark.django_db(transaction=True)
def test_an_authorisation_that_expires_during_a_long_review_cancels_the_order(
    without_shared_pipeline, catalog, shop_api, fault, tmp_path
):
    """The authorisation outlives its validity while staff review the order: the capture is
    declined ``authorization_expired``, the order is cancelled, voided and released."""
    ttl = 2.0
    procs = [harness.worker(tmp_path, GATEWAY_AUTHORIZATION_TTL_SECONDS=str(ttl)), harness.relay(tmp_path)]
    try:
        fault("fraud_review_rate", "1")
        order_id = shop_api.place(sku="SKU-2")["id"]

        def authorised_in_review() -> bool:
            order = Order.objects.get(public_id=order_id)
            return order.status == "review" and order.payment_authorized_at is not None

        harness.wait_until(authorised_in_review, 90, interval=0.2, what="the order in review, authorised")
        auth = GatewayTransaction.objects.get(reference=order_id, operation="authorize")
        harness.wait_until(
            lambda: (timezone.now() - auth.created_at).total_seconds() > ttl + 0.5, 30, what="the authorisation to expire"
        )
        assert fraud_decide(order_id=order_id, approve=True)

        def finished() -> bool:
            return Order.objects.get(public_id=order_id).is_terminal and Payment.objects.get(order_id=order_id).status == "voided"

        try:
            harness.wait_until(finished, 90, interval=0.2, what="the order to finish")
            harness.wait_until(lambda: MailboxMessage.objects.filter(order_id=order_id, kind="cancelled").exists(), 60)
            harness.wait_until(lambda: StockItem.objects.get(sku="SKU-2").available == 5, 60, what="the stock released")
        except AssertionError:
            print("\n".join(p.log()[-4000:] for p in procs))
            raise
        assert_cancelled_without_a_parcel(order_id, "authorization expired", "SKU-2", 5)
    finally:
        for proc in procs:
            proc.stop()


# ---- The services, called in process ---------------------------------------------------------


@pytest.mark.parametrize("captured", [False, True])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("without_shared_pipeline")
def test_shipment_creation_refuses_a_payment_that_is_not_captured(catalog, caplog, captured):
    order = new_order()
    oid, snapshot = order.public_id, orders.order_snapshot(order)
    payments.payment_authorize(event_id=event(), order_id=oid, payload=snapshot, handler="auth")
    if captured:
        payments.payment_capture(event_id=event(), order_id=oid, payload=snapshot, handler="capture")

    with caplog.at_level(logging.INFO):
        shipping.shipment_create(event_id=event(), order_id=oid, payload={"address": snapshot["address"]}, handler="ship")

    if captured:
        assert len(parcels(oid)) == 1 and Shipment.objects.get(order_id=oid).status == "created"
    else:
        assert parcels(oid) == []
        assert not Shipment.objects.filter(order_id=oid, status="created").exists()
        assert any(oid in r.getMessage() and "not captured" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("without_shared_pipeline")
def test_a_capture_after_the_authorisation_expired_is_declined_and_voided(catalog, settings):
    order = new_order()
    oid, snapshot = order.public_id, orders.order_snapshot(order)
    payments.payment_authorize(event_id=event(), order_id=oid, payload=snapshot, handler="auth")
    settings.GATEWAY_AUTHORIZATION_TTL_SECONDS = 0  # every authorisation has expired by the time it is captured

    payments.payment_capture(event_id=event(), order_id=oid, payload=snapshot, handler="capture")

    payment = Payment.objects.get(order_id=oid)
    assert (payment.status, payment.decline_code) == ("voided", "authorization_expired")
    assert approved_ops(oid) == {"authorize": 1, "void": 1}
    failed = OutboxEvent.objects.get(order_id=oid, kind="payment.capture_failed")
    assert "authorization expired" in failed.payload["reason"]
    assert "payment.captured" not in kinds(oid)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("without_shared_pipeline")
def test_payment_captured_makes_the_order_paid_and_no_longer_cancellable(catalog):
    order = new_order()
    oid = order.public_id
    make_ready(order)
    orders.order_apply_event(event_id=event(), kind="payment.captured", order_id=oid, payload={"address": {}})
    assert Order.objects.get(pk=order.pk).status == "paid"
    # A late failure cannot cancel an order whose money was taken and whose parcel is being handed over.
    orders.order_apply_event(event_id=event(), kind="stock.unavailable", order_id=oid, payload={"reason": "late"})
    assert Order.objects.get(pk=order.pk).status == "paid"
    orders.order_apply_event(event_id=event(), kind="shipment.created", order_id=oid, payload={"tracking_number": "T1"})
    assert Order.objects.get(pk=order.pk).status == "shipped"
    assert kinds(oid).count("order.cancelled") == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("without_shared_pipeline")
def test_a_declined_capture_cancels_a_ready_order(catalog):
    order = new_order()
    oid = order.public_id
    make_ready(order)
    orders.order_apply_event(
        event_id=event(), kind="payment.capture_failed", order_id=oid, payload={"reason": "payment capture declined: x"}
    )
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "payment capture declined: x")


@pytest.mark.parametrize("scan", ["shipment.in_transit", "shipment.delivered"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("without_shared_pipeline")
def test_carrier_scans_overtaking_the_capture_and_the_label_still_deliver(catalog, scan):
    """At the orders queue a scan can arrive before payment.captured and shipment.created:
    a parcel exists only for captured money, so the scan implies both."""
    order = new_order()
    oid = order.public_id
    make_ready(order)
    orders.order_apply_event(event_id=event(), kind=scan, order_id=oid, payload={"tracking_number": "T1"})
    expected = "in_transit" if scan == "shipment.in_transit" else "delivered"
    assert Order.objects.get(pk=order.pk).status == expected
    for late in ("payment.captured", "shipment.created", "shipment.in_transit", "shipment.delivered"):
        orders.order_apply_event(event_id=event(), kind=late, order_id=oid, payload={"tracking_number": "T1", "address": {}})
    assert Order.objects.get(pk=order.pk).status == "delivered"
    timeline = kinds(oid)
    assert timeline.count("order.shipped") == 1 and timeline.count("order.delivered") == 1
    assert "order.cancelled" not in timeline
