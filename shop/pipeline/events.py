"""The pipeline map: every event, and which task consumes it on which queue.

This module does for the pipeline what ``urls.py`` does for views: it is the
one place that says who reacts to what. The relay publishes one message per
subscription (so each subscriber has its own copy on its own queue), and the
``shop.E001`` system check fails ``manage.py check`` when a task named here is
not registered. Events with no subscriber are still recorded: they are the
order's timeline.
"""

from __future__ import annotations

from typing import NamedTuple


class Subscription(NamedTuple):
    event: str
    task: str
    queue: str


ORDER_STEP = "orders.tasks.apply_order_event"

PIPELINE: tuple[Subscription, ...] = (
    # Checkout -> four independent steps, in parallel.
    Subscription("order.placed", "orders.payments.tasks.authorize_payment", "payments"),
    Subscription("order.placed", "orders.fraud.tasks.screen_order", "fraud"),
    Subscription("order.placed", "inventory.tasks.reserve_stock", "inventory"),
    Subscription("order.placed", "notifications.tasks.send_order_email", "notifications"),
    # The order's state machine joins their results.
    Subscription("payment.authorized", ORDER_STEP, "orders"),
    Subscription("payment.declined", ORDER_STEP, "orders"),
    Subscription("payment.failed", ORDER_STEP, "orders"),
    Subscription("fraud.cleared", ORDER_STEP, "orders"),
    Subscription("fraud.review", ORDER_STEP, "orders"),
    Subscription("fraud.rejected", ORDER_STEP, "orders"),
    Subscription("fraud.review_expired", ORDER_STEP, "orders"),  # the review's deadline passed (a beat sweep)
    Subscription("stock.reserved", ORDER_STEP, "orders"),
    Subscription("stock.unavailable", ORDER_STEP, "orders"),
    # Ready: capture the money first. Only captured money gets a parcel: the label is
    # bought on payment.captured, and a declined capture cancels an order that has none.
    Subscription("order.ready", "orders.payments.tasks.capture_payment", "payments"),
    Subscription("payment.captured", ORDER_STEP, "orders"),
    Subscription("payment.captured", "shipping.tasks.create_shipment", "shipping"),
    Subscription("payment.capture_failed", ORDER_STEP, "orders"),
    Subscription("shipment.created", ORDER_STEP, "orders"),
    Subscription("shipment.created", "inventory.tasks.commit_stock", "inventory"),
    Subscription("shipment.created", "notifications.tasks.send_order_email", "notifications"),
    Subscription("shipment.in_transit", ORDER_STEP, "orders"),
    Subscription("shipment.delivered", ORDER_STEP, "orders"),
    # Cancellation: the compensations, each owned by its step.
    Subscription("order.cancelled", "orders.payments.tasks.cancel_payment", "payments"),
    Subscription("order.cancelled", "inventory.tasks.release_stock", "inventory"),
    Subscription("order.cancelled", "shipping.tasks.cancel_shipment", "shipping"),
    Subscription("order.cancelled", "notifications.tasks.send_order_email", "notifications"),
)

# Recorded on the timeline, consumed by nobody.
TIMELINE_ONLY: frozenset[str] = frozenset(
    {
        "order.shipped",
        "order.delivered",
        "order.flagged",
        "payment.voided",
        "payment.refunded",
        "stock.released",
        "stock.committed",
        "shipment.cancelled",
        "email.sent",
        "fraud.decided",
        "message.replayed",
        "stage.redriven",  # a staff re-drive: the timeline entry, and the message to one task
    }
)

QUEUES: tuple[str, ...] = ("orders", "payments", "fraud", "inventory", "shipping", "notifications")


def subscribers(event: str) -> list[Subscription]:
    """The subscriptions for one event, in map order."""
    return [s for s in PIPELINE if s.event == event]


def known_events() -> frozenset[str]:
    return frozenset(s.event for s in PIPELINE) | TIMELINE_ONLY


def task_queues() -> dict[str, str]:
    """Task name -> queue, derived from the map so that retries stay on their queue."""
    routes: dict[str, str] = {}
    for sub in PIPELINE:
        if routes.setdefault(sub.task, sub.queue) != sub.queue:
            raise ValueError(f"{sub.task} is mapped to two queues")
    return routes
