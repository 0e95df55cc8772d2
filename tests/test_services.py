"""Each step's service, called directly: duplicates, reordering and races change nothing."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, transaction

from inventory import services as inventory
from inventory.models import StockHold, StockItem
from notifications import services as notifications
from notifications.models import MailboxMessage
from orders import services as orders
from orders.models import Order
from orders.payments import services as payments
from orders.payments.models import GatewayTransaction, Payment
from shop.pipeline.models import OutboxEvent
from shop.storefront.checkout import CheckoutRequest, place
from tests.fixtures import order_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]


def new_order(**kw) -> Order:
    body = order_body(**kw)
    order, _ = place(CheckoutRequest(body["email"], body["name"], body["address"], body["items"], body["card"]))
    return order


def event() -> str:
    return str(uuid.uuid4())


def test_reserve_twice_takes_stock_once(catalog):
    order, eid = new_order(sku="SKU-2", quantity=2), event()
    for _ in range(3):
        inventory.stock_reserve(event_id=eid, order_id=order.public_id, lines=[{"sku": "SKU-2", "quantity": 2}], handler="t")
    stock = StockItem.objects.get(sku="SKU-2")
    assert (stock.available, stock.reserved) == (3, 2)


def test_release_before_reserve_leaves_a_tombstone(catalog):
    order = new_order(sku="SKU-2", quantity=2)
    inventory.stock_release(event_id=event(), order_id=order.public_id, handler="t")
    inventory.stock_reserve(event_id=event(), order_id=order.public_id, lines=[{"sku": "SKU-2", "quantity": 2}], handler="t")
    assert StockHold.objects.get(order_id=order.public_id).status == "released"
    assert StockItem.objects.get(sku="SKU-2").available == 5


def test_a_reservation_with_one_line_out_of_stock_takes_none_of_its_lines(catalog):
    order = new_order(sku="SKU-1", quantity=1)
    lines = [{"sku": "SKU-1", "quantity": 3}, {"sku": "SKU-2", "quantity": 2}, {"sku": "SKU-3", "quantity": 2}]
    inventory.stock_reserve(event_id=event(), order_id=order.public_id, lines=lines, handler="t")
    assert StockHold.objects.get(order_id=order.public_id).status == "unavailable"
    stock = {s.sku: (s.available, s.reserved) for s in StockItem.objects.all()}
    assert stock == {"SKU-1": (100, 0), "SKU-2": (5, 0), "SKU-3": (1, 0)}, "the lines taken before SKU-3 are given back"
    assert OutboxEvent.objects.get(order_id=order.public_id, kind="stock.unavailable").payload["sku"] == "SKU-3"


def test_stock_cannot_go_below_zero_even_by_a_direct_update(catalog):
    with pytest.raises(IntegrityError), transaction.atomic():
        StockItem.objects.filter(sku="SKU-3").update(available=-1)


def test_out_of_order_events_never_move_an_order_backwards(catalog):
    order = new_order()
    oid = order.public_id
    orders.order_apply_event(event_id=event(), kind="shipment.delivered", order_id=oid, payload={})
    assert Order.objects.get(pk=order.pk).status == "placed"
    for kind in ("payment.authorized", "fraud.cleared", "stock.reserved"):
        orders.order_apply_event(event_id=event(), kind=kind, order_id=oid, payload={})
    assert Order.objects.get(pk=order.pk).status == "ready"
    orders.order_apply_event(event_id=event(), kind="stock.unavailable", order_id=oid, payload={"reason": "late"})
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    orders.order_apply_event(event_id=event(), kind="payment.authorized", order_id=oid, payload={})
    assert Order.objects.get(pk=order.pk).status == "cancelled"


def test_a_carrier_scan_that_overtakes_shipment_created_still_delivers(catalog):
    """shipment.in_transit and shipment.delivered can reach the orders queue before
    shipment.created (a worker paused or killed holding it): the order must not stall."""
    oid = new_order().public_id
    for kind in ("payment.authorized", "fraud.cleared", "stock.reserved"):
        orders.order_apply_event(event_id=event(), kind=kind, order_id=oid, payload={})
    orders.order_apply_event(event_id=event(), kind="shipment.delivered", order_id=oid, payload={"tracking_number": "T1"})
    assert Order.objects.get(public_id=oid).status == "delivered"
    orders.order_apply_event(event_id=event(), kind="shipment.created", order_id=oid, payload={"tracking_number": "T1"})
    orders.order_apply_event(event_id=event(), kind="shipment.in_transit", order_id=oid, payload={"tracking_number": "T1"})
    assert Order.objects.get(public_id=oid).status == "delivered"
    kinds = list(OutboxEvent.objects.filter(order_id=oid).values_list("kind", flat=True))
    assert kinds.count("order.shipped") == 1 and kinds.count("order.delivered") == 1


def test_the_same_event_twice_readies_the_order_once(catalog):
    order = new_order()
    ids = {kind: event() for kind in ("payment.authorized", "fraud.cleared", "stock.reserved")}
    for _ in range(2):
        for kind, eid in ids.items():
            orders.order_apply_event(event_id=eid, kind=kind, order_id=order.public_id, payload={})
    from shop.pipeline.models import OutboxEvent

    assert OutboxEvent.objects.filter(order_id=order.public_id, kind="order.ready").count() == 1


def test_authorise_twice_charges_once(catalog):
    order = new_order()
    payload = orders.order_snapshot(order)
    eid = event()
    for _ in range(3):
        payments.payment_authorize(event_id=eid, order_id=order.public_id, payload=payload, handler="t")
    assert GatewayTransaction.objects.filter(reference=order.public_id).count() == 1
    assert Payment.objects.get(order_id=order.public_id).status == "authorized"


def test_cancel_during_authorisation_voids_when_the_call_ends(catalog, monkeypatch):
    """The cancellation arrives while the gateway call is in flight: the authoriser undoes it."""
    order = new_order()
    payload = orders.order_snapshot(order)
    real_authorize = payments.gateway.authorize

    def authorize_while_cancelled(**kw):
        payments.payment_cancel(event_id=event(), order_id=order.public_id, handler="cancel")
        return real_authorize(**kw)

    monkeypatch.setattr(payments.gateway, "authorize", authorize_while_cancelled)
    payments.payment_authorize(event_id=event(), order_id=order.public_id, payload=payload, handler="auth")
    ops = sorted(GatewayTransaction.objects.filter(reference=order.public_id).values_list("operation", flat=True))
    assert ops == ["authorize", "void"]
    assert Payment.objects.get(order_id=order.public_id).status == "voided"


def test_cancel_before_authorisation_means_no_charge(catalog):
    order = new_order()
    payments.payment_cancel(event_id=event(), order_id=order.public_id, handler="cancel")
    payments.payment_authorize(event_id=event(), order_id=order.public_id, payload=orders.order_snapshot(order), handler="auth")
    assert not GatewayTransaction.objects.filter(reference=order.public_id).exists()


def test_one_email_per_order_and_kind(catalog, settings):
    settings.MAILERS = {"default": {"BACKEND": "notifications.mailbox.MailboxBackend"}}
    order = new_order()
    for _ in range(3):
        notifications.email_send(event_id=event(), event="order.placed", order_id=order.public_id, payload={}, handler="t")
    assert MailboxMessage.objects.filter(order_id=order.public_id, kind="received").count() == 1
