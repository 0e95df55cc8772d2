"""Read-only questions other parts of the shop may ask about orders."""

from __future__ import annotations

import re

from orders.models import Order
from shop.pipeline.models import OutboxEvent

# Public ids are URL-safe base64 (``new_public_id``); anything else is not an order's id, and
# a NUL byte would be a database error rather than "no such order".
PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def order_by_public_id(public_id: str) -> Order | None:
    if not PUBLIC_ID.fullmatch(public_id):
        return None
    return Order.objects.prefetch_related("lines").filter(public_id=public_id).first()


def order_contact(public_id: str) -> tuple[str, str] | None:
    """(email, name) for notifications."""
    row = Order.objects.filter(public_id=public_id).values_list("email", "name").first()
    return (row[0], row[1]) if row else None


def order_timeline(public_id: str) -> list[OutboxEvent]:
    """The order's events, oldest first: the outbox rows are its timeline."""
    return list(OutboxEvent.objects.filter(order_id=public_id).order_by("created_at", "id"))
