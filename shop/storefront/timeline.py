"""What a customer sees of an order's timeline: a sentence of their own per event kind, or nothing.

The outbox row's ``message`` is the staff text (fraud scores and rules, who
approved a review, internal errors); the admin shows it. Customers (the order
page and ``GET /api/orders/<id>``) get the text below instead. A kind missing
from ``CUSTOMER_TEXT`` is hidden, so an event added later stays private until
someone decides what the customer may read about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from orders.models import Order, OrderStatus
from orders.payments.selectors import authorization_attempts
from orders.reasons import CANCEL_REASONS, DEFAULT_CANCEL_REASON
from shop.pipeline.models import OutboxEvent
from shop.storefront.journey import Journey, Progress, order_journey

# Kind -> customer sentence, or None for steps that concern only staff.
# ``{tracking_number}`` is the only payload field a sentence may use.
CUSTOMER_TEXT: dict[str, str | None] = {
    "order.placed": "We received your order.",
    "payment.authorized": "Payment authorised.",
    "payment.declined": "Your card was declined.",
    "payment.failed": "We could not take the payment.",
    "payment.captured": "Payment taken.",
    "payment.capture_failed": "We could not take the payment.",
    "payment.voided": "The hold on your card was released; nothing was charged.",
    "payment.refunded": "Your payment was refunded.",
    "fraud.cleared": "Order checks complete.",
    "fraud.review": "We are checking your order; this can take a little while.",
    "fraud.rejected": "We could not accept this order.",
    "fraud.review_expired": "We could not finish checking your order in time.",
    "fraud.decided": None,
    "stock.reserved": "Your items are reserved.",
    "stock.unavailable": "An item in your order is out of stock.",
    "stock.released": None,
    "stock.committed": None,
    "order.ready": "Your order is being prepared for shipping.",
    "shipment.created": "Your parcel has a shipping label.",
    "order.shipped": "Shipped: tracking number {tracking_number}.",
    "shipment.in_transit": "Your parcel is on its way.",
    "shipment.delivered": None,  # order.delivered says it once
    "order.delivered": "Delivered.",
    "shipment.cancelled": None,
    "order.cancelled": "Your order was cancelled.",
    "email.sent": "We sent you an email.",
    "order.flagged": None,  # a dead letter: internal
    "message.replayed": None,
    "stage.redriven": None,  # a staff action: internal
}
SAFE_FIELDS = ("tracking_number",)


@dataclass(frozen=True)
class CustomerEntry:
    at: datetime
    kind: str
    message: str


def customer_text(event: OutboxEvent) -> str | None:
    """The customer's sentence for one event, or None when the event is not theirs to see."""
    template = CUSTOMER_TEXT.get(event.kind)
    if template is None:
        return None
    payload = event.payload if isinstance(event.payload, dict) else {}
    return template.format_map({name: str(payload.get(name, "")) for name in SAFE_FIELDS})


def customer_timeline(events: list[OutboxEvent]) -> list[CustomerEntry]:
    """The entries a customer may see, oldest first, each with its customer text."""
    entries = []
    for event in events:
        text = customer_text(event)
        if text is not None:
            entries.append(CustomerEntry(at=event.created_at, kind=event.kind, message=text))
    return entries


def customer_reason(events: list[OutboxEvent]) -> str | None:
    """Why the order was cancelled, in customer words: from the step that cancelled it.

    The staff reason (``Order.cancel_reason``) names fraud rules, scores and
    reviewers; this looks only at which kind of step failed. None if not cancelled.
    """
    cause = None
    for event in events:
        if event.kind == "order.cancelled":
            return CANCEL_REASONS.get(cause or "", DEFAULT_CANCEL_REASON)
        if event.kind in CANCEL_REASONS:
            cause = event.kind
    return None


@dataclass(frozen=True)
class CustomerOrderView:
    reason: str | None
    timeline: list[CustomerEntry]
    journey: Journey


def customer_order_view(order: Order, events: list[OutboxEvent]) -> CustomerOrderView:
    """What the order page and the public API show: the customer reason, timeline and journey."""
    reason = None
    if order.status == OrderStatus.CANCELLED:
        reason = customer_reason(events) or DEFAULT_CANCEL_REASON
    progress = Progress(
        payment_attempts=authorization_attempts(order.public_id),
        max_attempts=settings.PIPELINE_MAX_RETRIES + 1,
        review_seconds=settings.FRAUD_REVIEW_DEADLINE_SECONDS,
    )
    journey = order_journey(str(order.status), events, progress, reason)
    return CustomerOrderView(reason=reason, timeline=customer_timeline(events), journey=journey)
