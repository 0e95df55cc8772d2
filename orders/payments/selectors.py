"""Read-only questions other parts of the shop may ask about payments."""

from __future__ import annotations

from orders.payments.models import Payment, PaymentStatus


def payment_is_captured(order_id: str) -> bool:
    """True when the order's money is taken (and not being given back): the carrier may have the parcel."""
    return Payment.objects.filter(order_id=order_id, status=PaymentStatus.CAPTURED).exists()


def authorization_attempts(order_id: str) -> int:
    """How many times the payments worker has called the gateway to authorise this order so far
    (the order page's "attempt 3 of 9" while a silent gateway is retried)."""
    return Payment.objects.filter(order_id=order_id).values_list("attempts", flat=True).first() or 0
