"""The synchronous checkout: the foil the asynchronous one is measured against.

It places the order exactly as ``checkout.place`` does (the order, its lines,
``order.placed`` in the outbox and the idempotency key, in one transaction), then
does inside the request what the payments, fraud and inventory workers would do
with that event: the same service calls, with the event's id and each task's name
as the handler. The idempotent consumer (``shop.pipeline.messaging``) records each
step under that (message, handler) pair, so the workers' copies of the same message,
published by the relay as usual, find the work done and change nothing; the events
the steps emit reach the orders join as usual.

What it shows is the price: the customer waits for the gateway, and a gateway that
does not answer becomes the customer's error. Such a step is left as it stands (a
payment still ``authorizing``, no processed-message row), so the payments worker
resumes it with the same gateway idempotency key: the order is never lost and the
card is never authorised twice. Off unless ``SYNC_CHECKOUT_ENABLED``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from inventory import services as inventory_services
from inventory import tasks as inventory_tasks
from orders.fraud import services as fraud_services
from orders.fraud import tasks as fraud_tasks
from orders.models import Order
from orders.payments import services as payment_services
from orders.payments import tasks as payment_tasks
from orders.reasons import CANCEL_REASONS, customer_reason_for
from orders.selectors import order_timeline
from shop.pipeline.errors import TransientError
from shop.pipeline.models import OutboxEvent
from shop.storefront import checkout

# Each step's outcome, named by the event kind it emitted (the kinds a customer's timeline
# already shows); a step with none of them has not answered yet.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "payment": ("payment.authorized", "payment.declined", "payment.failed"),
    "fraud": ("fraud.cleared", "fraud.review", "fraud.rejected"),
    "stock": ("stock.reserved", "stock.unavailable"),
}
PENDING = "pending"
log = logging.getLogger("shop.storefront")


@dataclass(frozen=True)
class SyncCheckout:
    """The order and how far its steps got inside the request."""

    order: Order
    outcomes: dict[str, str]
    reason: str | None
    # Set when a step could not finish now (the gateway timed out or was unavailable).
    unfinished: str = ""


def place(req: checkout.CheckoutRequest, *, idempotency_key: str | None, fingerprint_of: dict[str, Any]) -> SyncCheckout:
    """Place the order, then authorise, screen and reserve before answering.

    A replayed Idempotency-Key runs the steps again: the ones already done are
    no-ops, and a payment left by an earlier gateway error is resumed.
    """
    order, _created = checkout.place(req, idempotency_key=idempotency_key, fingerprint_of=fingerprint_of)
    placed = OutboxEvent.objects.get(order_id=order.public_id, kind="order.placed")
    unfinished = ""
    try:
        run_steps(event_id=str(placed.event_id), order_id=order.public_id, payload=placed.payload)
    except TransientError as exc:
        log.warning("sync checkout: order %s left to its worker: %s", order.public_id, exc)
        unfinished = str(exc)
    order.refresh_from_db()
    return SyncCheckout(order, *_outcomes(order.public_id), unfinished=unfinished)


def run_steps(*, event_id: str, order_id: str, payload: dict[str, Any]) -> None:
    """What the three workers do with ``order.placed``, called as their tasks call it.

    Stock and fraud touch only the database and go first; the payment, the only step
    that waits on the outside world, goes last, so a gateway error leaves it alone
    unfinished.
    """
    inventory_services.stock_reserve(
        event_id=event_id, order_id=order_id, lines=payload["lines"], handler=inventory_tasks.reserve_stock.name
    )
    fraud_services.fraud_screen(event_id=event_id, order_id=order_id, payload=payload, handler=fraud_tasks.screen_order.name)
    payment_services.payment_authorize(
        event_id=event_id, order_id=order_id, payload=payload, handler=payment_tasks.authorize_payment.name
    )


def _outcomes(order_id: str) -> tuple[dict[str, str], str | None]:
    """Each step's outcome word, and the customer's reason when one of them failed."""
    kinds = [event.kind for event in order_timeline(order_id)]
    outcomes, reason = {}, None
    for step, answers in OUTCOMES.items():
        answer = next((kind for kind in kinds if kind in answers), None)
        outcomes[step] = answer.split(".", 1)[1] if answer else PENDING
        if answer in CANCEL_REASONS and reason is None:
            reason = customer_reason_for(answer)
    return outcomes, reason
