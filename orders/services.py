"""Every change to an order: placing it, and moving it on as the steps report back.

Each function runs in one transaction that also writes its outgoing events to
the outbox. The order row is locked (``select_for_update``) while its state
moves, and each transition is a conditional update (``ConcurrentTransitionMixin``),
so duplicate or out-of-order events cannot move an order backwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from orders.models import Order, OrderLine, OrderStatus
from orders.reasons import customer_reason_for
from shop.pipeline.messaging import claim_message
from shop.pipeline.outbox import emit

log = logging.getLogger("orders")
HANDLER = "orders.apply_order_event"


@dataclass(frozen=True)
class LineRequest:
    sku: str
    name: str
    unit_price: Decimal
    quantity: int


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str = ""


@dataclass(frozen=True)
class CardOnFile:
    token: str
    brand: str
    last4: str
    country: str = ""


def order_place(*, email: str, name: str, address: Address, lines: list[LineRequest], card: CardOnFile, currency: str) -> Order:
    """Write the order, its lines and ``order.placed`` in one transaction.

    Call inside ``transaction.atomic()`` when more must commit with it (the API's
    idempotency key); the request never talks to the broker.
    """
    total = sum((line.unit_price * line.quantity for line in lines), Decimal("0"))
    with transaction.atomic():
        order = Order.objects.create(
            email=email,
            name=name,
            address_line1=address.line1,
            address_line2=address.line2,
            city=address.city,
            postal_code=address.postal_code,
            country=address.country,
            currency=currency,
            total=total,
            card_brand=card.brand,
            card_last4=card.last4,
            card_token=card.token,
            card_country=card.country,
        )
        OrderLine.objects.bulk_create(
            OrderLine(order=order, sku=li.sku, name=li.name, unit_price=li.unit_price, quantity=li.quantity) for li in lines
        )
        emit(
            "order.placed",
            order_id=order.public_id,
            payload=order_snapshot(order, lines),
            message=f"Order placed: {sum(li.quantity for li in lines)} item(s), {currency} {total}",
        )
    return order


def order_snapshot(order: Order, lines: list[LineRequest] | None = None) -> dict[str, Any]:
    """What the steps need to know about the order, carried in the event itself."""
    if lines is None:
        lines = [LineRequest(li.sku, li.name, li.unit_price, li.quantity) for li in order.lines.all()]
    return {
        "email": order.email,
        "name": order.name,
        "amount": str(order.total),
        "currency": order.currency,
        "card_token": order.card_token,
        "card_country": order.card_country,
        "address": {
            "line1": order.address_line1,
            "line2": order.address_line2,
            "city": order.city,
            "postal_code": order.postal_code,
            "country": order.country,
        },
        "lines": [{"sku": li.sku, "quantity": li.quantity} for li in lines],
    }


def order_apply_event(*, event_id: str, kind: str, order_id: str, payload: dict[str, Any]) -> None:
    """Move the order on with one step's result; a duplicate delivery changes nothing."""
    step = _STEPS.get(kind)
    if step is None:
        raise ValueError(f"orders has no step for {kind!r}")
    with transaction.atomic():
        if not claim_message(event_id, HANDLER):
            return
        order = Order.objects.select_for_update().filter(public_id=order_id).first()
        if order is None:
            log.error("event %s for unknown order %s ignored", kind, order_id)
            return
        step(order, payload)


# The columns the join changes; the customer's details are written once, at checkout.
JOIN_FIELDS = ("status", "payment_authorized_at", "fraud_cleared_at", "stock_reserved_at", "cancel_reason", "updated_at")


def _save(order: Order) -> None:
    """Write the join's columns of the locked order (django-fsm still checks the status it read)."""
    order.save(update_fields=JOIN_FIELDS)


def _try_ready(order: Order) -> bool:
    """Make the order ready once all three answers are in; saves it then (True)."""
    if order.status == OrderStatus.PLACED and can_proceed(order.make_ready):
        order.make_ready()
        _save(order)
        emit(
            "order.ready",
            order_id=order.public_id,
            payload=order_snapshot(order),
            message="Order is ready: authorised, screened, reserved; capturing the payment",
        )
        return True
    return False


def _cancel(order: Order, reason: str, *, cause: str, detail: str = "") -> None:
    """Cancel with the staff ``reason``; the customer reads only the reason for the ``cause`` (an event kind).

    ``detail`` is what the customer's email adds to it, when the reason alone does not explain it.
    """
    if not can_proceed(order.cancel):
        log.info("order %s is %s; not cancelled for %s", order.public_id, order.status, reason)
        return
    order.cancel(reason)
    _save(order)
    payload = {"reason": reason, "customer_reason": customer_reason_for(cause)}
    if detail:
        payload["detail"] = detail
    emit("order.cancelled", order_id=order.public_id, payload=payload, message=f"Order cancelled: {reason}")


def _mark(field: str) -> Callable[[Order, dict[str, Any]], None]:
    def step(order: Order, payload: dict[str, Any]) -> None:
        if order.is_terminal or getattr(order, field):
            return
        setattr(order, field, timezone.now())
        if field == "fraud_cleared_at" and order.status == OrderStatus.REVIEW:
            order.resume()
        if not _try_ready(order):  # one UPDATE of the order per answer, also for the one that completes it
            _save(order)

    return step


def _failed(cause: str, default: str) -> Callable[[Order, dict[str, Any]], None]:
    def step(order: Order, payload: dict[str, Any]) -> None:
        _cancel(order, payload.get("reason") or default, cause=cause)

    return step


def _review(order: Order, payload: dict[str, Any]) -> None:
    if order.status == OrderStatus.PLACED and not order.fraud_cleared_at:
        order.hold_for_review()
        _save(order)


def _review_expired(order: Order, payload: dict[str, Any]) -> None:
    """The review outlived its deadline: cancel, unless the order was cleared or has ended meanwhile."""
    if order.status in (OrderStatus.PLACED, OrderStatus.REVIEW) and not order.fraud_cleared_at:
        reason = payload.get("reason") or "fraud review not completed in time"
        _cancel(order, reason, cause="fraud.review_expired", detail=payload.get("detail", ""))


def _paid(order: Order, payload: dict[str, Any]) -> None:
    if order.status == OrderStatus.READY:
        order.mark_paid()
        _save(order)


def _shipped(order: Order, payload: dict[str, Any]) -> None:
    if order.status in (OrderStatus.READY, OrderStatus.PAID):
        order.ship()
        _save(order)
        emit(
            "order.shipped",
            order_id=order.public_id,
            payload=payload,
            message=f"Shipped: tracking {payload.get('tracking_number', '')}",
        )


def _in_transit(order: Order, payload: dict[str, Any]) -> None:
    _shipped(order, payload)  # a carrier scan can overtake shipment.created: it implies the hand-over
    if order.status == OrderStatus.SHIPPED:
        order.mark_in_transit()
        _save(order)


def _delivered(order: Order, payload: dict[str, Any]) -> None:
    _shipped(order, payload)
    if order.status in (OrderStatus.SHIPPED, OrderStatus.IN_TRANSIT):
        order.deliver()
        _save(order)
        emit("order.delivered", order_id=order.public_id, message="Delivered")


_STEPS: dict[str, Callable[[Order, dict[str, Any]], None]] = {
    "payment.authorized": _mark("payment_authorized_at"),
    "fraud.cleared": _mark("fraud_cleared_at"),
    "stock.reserved": _mark("stock_reserved_at"),
    "fraud.review": _review,
    "payment.declined": _failed("payment.declined", "payment declined"),
    "payment.failed": _failed("payment.failed", "payment failed"),
    "payment.captured": _paid,
    "payment.capture_failed": _failed("payment.capture_failed", "payment capture declined"),
    "fraud.rejected": _failed("fraud.rejected", "rejected by fraud screening"),
    "fraud.review_expired": _review_expired,
    "stock.unavailable": _failed("stock.unavailable", "out of stock"),
    "shipment.created": _shipped,
    "shipment.in_transit": _in_transit,
    "shipment.delivered": _delivered,
}
