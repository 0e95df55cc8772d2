"""The staff actions in the admin: re-drive a stage of an order through an intermediate form,
and replay dead letters in bulk; each recorded with the staff user's name."""

from __future__ import annotations

import pytest

from orders.models import Order
from shop.pipeline import deadletters
from shop.pipeline.models import DeadLetter, OutboxEvent

# No relay or worker runs: what the actions write stays as they wrote it.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]

ORDERS = "/admin/orders/order/"
LETTERS = "/admin/pipeline/deadletter/"


def test_redrive_action_asks_for_the_stage_then_redrives_it(admin_client, shop_api, catalog):
    order = Order.objects.get(public_id=shop_api.place(sku="SKU-1")["id"])
    selected = {"action": "redrive_stage", "_selected_action": [order.pk]}

    page = admin_client.post(ORDERS, selected)
    assert page.status_code == 200
    text = page.content.decode()
    assert "reserve_stock on order.placed (queue inventory)" in text
    assert "capture_payment" not in text  # the order has no order.ready yet: not a stage it can re-run

    wrong = admin_client.post(ORDERS, {**selected, "apply": "1", "stage": "order.ready|orders.payments.tasks.capture_payment"})
    assert wrong.status_code == 200 and "Select a valid choice" in wrong.content.decode()
    assert not OutboxEvent.objects.filter(kind="stage.redriven").exists()

    stage = "order.placed|inventory.tasks.reserve_stock"
    done = admin_client.post(ORDERS, {**selected, "apply": "1", "stage": stage}, follow=True)
    assert "re-emitted order.placed" in done.content.decode()
    entry = OutboxEvent.objects.get(order_id=order.public_id, kind="stage.redriven")
    assert entry.target_task == "inventory.tasks.reserve_stock"
    assert entry.message.startswith("admin re-drove reserve_stock on order.placed: re-emitted order.placed")
    assert entry.payload["staff"] == "admin"
    assert entry.payload["kwargs"]["event_id"] == str(entry.event_id)


def test_redrive_action_takes_one_order_at_a_time(admin_client, shop_api, catalog):
    pks = [Order.objects.get(public_id=shop_api.place(sku="SKU-1")["id"]).pk for _ in range(2)]
    page = admin_client.post(ORDERS, {"action": "redrive_stage", "_selected_action": pks}, follow=True)
    assert "Select exactly one order" in page.content.decode()


def park(order_id: str, task: str) -> DeadLetter:
    letter = deadletters.park(
        task=task, queue="payments", message_id=f"{order_id}-{task}", order_id=order_id, kwargs={}, error="boom"
    )
    assert letter is not None
    return letter


def test_bulk_replay_action_replays_the_parked_and_shows_what_became_of_them(admin_client):
    first = park("ORD-A", "orders.payments.tasks.capture_payment")
    second = park("ORD-B", "orders.payments.tasks.capture_payment")
    other = park("ORD-C", "orders.payments.tasks.cancel_payment")
    deadletters.replay(other.pk, staff="someone")

    filtered = admin_client.get(LETTERS, {"task": "orders.payments.tasks.capture_payment", "status": "parked"})
    assert filtered.status_code == 200
    ids = [first.pk, second.pk, other.pk]
    page = admin_client.post(LETTERS, {"action": "replay", "_selected_action": ids}, follow=True)
    text = page.content.decode()
    assert "Replayed 2 message(s). 1 were not parked and were left alone." in text
    assert set(DeadLetter.objects.values_list("status", flat=True)) == {"replayed"}
    assert "waiting" in text  # the outcome column: published to no worker yet
    assert OutboxEvent.objects.get(order_id="ORD-A", kind="message.replayed").message == "admin replayed capture_payment"
