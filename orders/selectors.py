"""Read-only questions other parts of the shop may ask about orders."""

from __future__ import annotations

from orders.models import Order
from shop.models import OutboxEvent


def order_by_public_id(public_id: str) -> Order | None:
    return Order.objects.prefetch_related("lines").filter(public_id=public_id).first()


def order_contact(public_id: str) -> tuple[str, str] | None:
    """(email, name) for notifications."""
    row = Order.objects.filter(public_id=public_id).values_list("email", "name").first()
    return (row[0], row[1]) if row else None


def order_timeline(public_id: str) -> list[OutboxEvent]:
    """The order's events, oldest first: the outbox rows are its timeline."""
    return list(OutboxEvent.objects.filter(order_id=public_id).order_by("created_at", "id"))
