"""Read-only questions other parts of the shop may ask about payments."""

from __future__ import annotations

from orders.payments.models import Payment, PaymentStatus


def payment_is_captured(order_id: str) -> bool:
    """True when the order's money is taken (and not being given back): the carrier may have the parcel."""
    return Payment.objects.filter(order_id=order_id, status=PaymentStatus.CAPTURED).exists()
