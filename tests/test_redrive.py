"""Staff re-drives on real processes: a stage that already took effect repeats nothing and says
so; a stage that failed (a parked capture) completes the order once re-driven."""

from __future__ import annotations

import pytest

from orders.fraud.models import FraudCheck
from orders.fraud.services import fraud_decide
from orders.models import Order
from orders.payments.models import GatewayTransaction, Payment
from shipping.models import CarrierParcel, Shipment
from shop.pipeline import redrive
from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.proof import audit
from tests.harness import wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

SHIP = "shipping.tasks.create_shipment"
CAPTURE = "orders.payments.tasks.capture_payment"


def approved_ops(order_id: str) -> dict[str, int]:
    ops: dict[str, int] = {}
    for op in GatewayTransaction.objects.filter(reference=order_id, approved=True).values_list("operation", flat=True):
        ops[op] = ops.get(op, 0) + 1
    return ops


def redrive_entries(order_id: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(order_id=order_id, kind=redrive.REDRIVEN).order_by("id"))


def wait_processed(result: redrive.RedriveResult) -> None:
    wait_until(
        lambda: redrive.redrive_outcome(result.message_id, result.stage.task) == "processed",
        30,
        what="the re-driven message to be processed",
    )


def test_redrive_of_a_delivered_orders_shipping_creates_no_second_shipment(pipeline, shop_api):
    order = shop_api.place(sku="SKU-1")
    oid = order["id"]
    assert pipeline.wait_terminal([oid]) == {oid: "delivered"}
    tracking = Shipment.objects.get(order_id=oid).tracking_number

    result = redrive.redrive(oid, SHIP, staff="Grace Hopper")
    assert not result.emitted
    assert result.already_done == f"shipment {tracking} already exists (delivered)"
    assert "nothing to do" in result.summary
    [entry] = redrive_entries(oid)
    assert entry.message.startswith("Grace Hopper re-drove create_shipment on payment.captured: nothing to do")
    assert entry.target_task == "" and entry.payload["staff"] == "Grace Hopper"

    # Forced, the message goes out under a new id; the stage itself buys no second label.
    forced = redrive.redrive(oid, SHIP, staff="Grace Hopper", force=True)
    assert forced.emitted and forced.already_done
    original = OutboxEvent.objects.get(order_id=oid, kind="payment.captured")
    assert forced.message_id != str(original.event_id)
    wait_processed(forced)
    pipeline.wait_quiet()
    assert Shipment.objects.filter(order_id=oid).count() == 1
    assert CarrierParcel.objects.filter(idempotency_key=f"label-{oid}").count() == 1
    assert OutboxEvent.objects.filter(order_id=oid, kind="shipment.created").count() == 1
    assert Order.objects.get(public_id=oid).status == "delivered"
    assert len(redrive_entries(oid)) == 2
    assert [f for f in audit.run().violations if f.order_id == oid] == []


def test_redrive_refuses_a_stage_without_its_input(pipeline, shop_api):
    order = shop_api.place(sku="SKU-1")
    assert pipeline.wait_terminal([order["id"]]) == {order["id"]: "delivered"}
    with pytest.raises(redrive.RedriveRefused, match=r"has no order\.cancelled event"):
        redrive.redrive(order["id"], "shipping.tasks.cancel_shipment", staff="Grace Hopper")
    with pytest.raises(redrive.RedriveRefused, match="several events"):
        redrive.redrive(order["id"], "notifications.tasks.send_order_email", staff="Grace Hopper")
    with pytest.raises(redrive.RedriveRefused, match="no stage"):
        redrive.redrive(order["id"], "shipping.tasks.nothing", staff="Grace Hopper")
    assert redrive_entries(order["id"]) == []
    stages = redrive.stages_for(order["id"])
    assert ("payment.captured", SHIP) in [(s.event, s.task) for s in stages]
    assert "order.cancelled" not in {s.event for s in stages}


def test_redrive_of_a_parked_capture_completes_the_order(pipeline, shop_api, fault):
    """The capture meets a gateway outage past its retries and is parked; once the gateway is
    back, re-driving the capture stage takes the money once and the order is delivered."""
    fault("fraud_review_rate", "1")  # the order waits in review: the outage starts before its capture
    order = shop_api.place(sku="SKU-1")
    oid = order["id"]
    wait_until(
        lambda: Payment.objects.filter(order_id=oid, status="authorized").exists()
        and FraudCheck.objects.filter(order_id=oid, decision="review").exists()
        and Order.objects.get(public_id=oid).status == "review",
        30,
        what="the order to wait in review, authorised",
    )
    fault("gateway_failure_rate", "1")
    assert fraud_decide(order_id=oid, approve=True)
    letter = wait_until(
        lambda: DeadLetter.objects.filter(order_id=oid, task=CAPTURE, status="parked").first(),
        60,
        what="the capture to be parked",
    )
    assert Payment.objects.get(order_id=oid).status == "capturing"
    fault("gateway_failure_rate", "0")
    fault("fraud_review_rate", "0")

    result = redrive.redrive(oid, CAPTURE, staff="Grace Hopper")
    assert result.emitted and not result.already_done
    assert result.superseded == (letter.pk,)
    assert DeadLetter.objects.get(pk=letter.pk).status == "discarded"
    assert pipeline.wait_terminal([oid], timeout=60) == {oid: "delivered"}
    wait_processed(result)
    assert approved_ops(oid) == {"authorize": 1, "capture": 1}
    assert Shipment.objects.filter(order_id=oid).count() == 1
    [entry] = redrive_entries(oid)
    assert entry.message.startswith("Grace Hopper re-drove capture_payment on order.ready: re-emitted order.ready")
    pipeline.wait_quiet()
    assert [f for f in audit.run().violations if f.order_id == oid] == []


def effects(order_id: str) -> dict[str, object]:
    """Every effect a stage can have on an order, counted."""
    from inventory.models import StockItem
    from notifications.models import MailboxMessage

    kinds: dict[str, int] = {}
    for kind in OutboxEvent.objects.filter(order_id=order_id).exclude(kind=redrive.REDRIVEN).values_list("kind", flat=True):
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "gateway": approved_ops(order_id),
        "payment": Payment.objects.get(order_id=order_id).status,
        "fraud checks": FraudCheck.objects.filter(order_id=order_id).count(),
        "shipments": list(Shipment.objects.filter(order_id=order_id).values_list("status", flat=True)),
        "parcels": CarrierParcel.objects.filter(idempotency_key=f"label-{order_id}").count(),
        "emails": sorted(MailboxMessage.objects.filter(order_id=order_id).values_list("kind", flat=True)),
        "stock": list(StockItem.objects.order_by("sku").values_list("sku", "available", "reserved", "shipped")),
        "order": Order.objects.get(public_id=order_id).status,
        "events": kinds,
    }


@pytest.mark.parametrize("card", ["4242424242424242", "4000000000000002"], ids=["delivered", "cancelled"])
def test_every_stage_redriven_under_new_message_ids_repeats_no_effect(pipeline, shop_api, card):
    """Idempotency is on the effects, not only on message ids: every stage this order went
    through, forced to run again under a new message id, changes nothing."""
    oid = shop_api.place(sku="SKU-2", card=card)["id"]
    pipeline.wait_terminal([oid])
    pipeline.wait_quiet()
    before = effects(oid)
    stages = redrive.stages_for(oid)
    assert len(stages) >= 8
    results = [redrive.redrive(oid, s.task, event=s.event, staff="Grace Hopper", force=True) for s in stages]
    assert all(r.emitted for r in results)
    for result in results:
        wait_processed(result)
    pipeline.wait_quiet()
    assert effects(oid) == before
    assert [f for f in audit.run().violations if f.order_id == oid] == []
