"""The order: the saga's state, joined from the results of its independent steps."""

from __future__ import annotations

import secrets

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


def new_public_id() -> str:
    """Unguessable: a customer reaches an order only through this link."""
    return secrets.token_urlsafe(16)


class OrderStatus(models.TextChoices):
    PLACED = "placed", "Placed"
    REVIEW = "review", "In fraud review"
    READY = "ready", "Ready to ship"
    PAID = "paid", "Paid"
    SHIPPED = "shipped", "Shipped"
    IN_TRANSIT = "in_transit", "In transit"
    DELIVERED = "delivered", "Delivered"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = (OrderStatus.DELIVERED, OrderStatus.CANCELLED)
OPEN = (OrderStatus.PLACED, OrderStatus.REVIEW)


class Order(ConcurrentTransitionMixin, models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    email = models.EmailField(max_length=254)
    name = models.CharField(max_length=100)
    address_line1 = models.CharField(max_length=100)
    address_line2 = models.CharField(max_length=100, blank=True)
    city = models.CharField(max_length=60)
    postal_code = models.CharField(max_length=16)
    country = models.CharField(max_length=2)
    currency = models.CharField(max_length=3, default="GBP")
    total = models.DecimalField(max_digits=12, decimal_places=2)
    # The card: brand, last four and the gateway's token. Never the number.
    card_brand = models.CharField(max_length=20)
    card_last4 = models.CharField(max_length=4)
    card_token = models.CharField(max_length=64)
    card_country = models.CharField(max_length=2, blank=True)
    status = FSMField(default=OrderStatus.PLACED, choices=OrderStatus.choices, protected=True, db_index=True)
    # The join: each step's success, recorded when its event arrives, in any order.
    payment_authorized_at = models.DateTimeField(null=True, blank=True)
    fraud_cleared_at = models.DateTimeField(null=True, blank=True)
    stock_reserved_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=models.Q(total__gte=0), name="order_total_not_negative")]

    def __str__(self) -> str:
        return f"Order {self.public_id}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def steps_done(self) -> bool:
        return bool(self.payment_authorized_at and self.fraud_cleared_at and self.stock_reserved_at)

    @transition(field=status, source=OrderStatus.PLACED, target=OrderStatus.REVIEW)
    def hold_for_review(self) -> None:
        pass

    @transition(field=status, source=OrderStatus.REVIEW, target=OrderStatus.PLACED)
    def resume(self) -> None:
        pass

    @transition(field=status, source=OrderStatus.PLACED, target=OrderStatus.READY, conditions=[steps_done])
    def make_ready(self) -> None:
        pass

    @transition(field=status, source=OrderStatus.READY, target=OrderStatus.PAID)
    def mark_paid(self) -> None:
        """The money is captured: from here the order goes to the carrier, it is no longer cancelled."""

    # From ready too: a parcel exists only for captured money, so its label (or a carrier
    # scan) can reach the orders queue before payment.captured does.
    @transition(field=status, source=[OrderStatus.READY, OrderStatus.PAID], target=OrderStatus.SHIPPED)
    def ship(self) -> None:
        pass

    @transition(field=status, source=OrderStatus.SHIPPED, target=OrderStatus.IN_TRANSIT)
    def mark_in_transit(self) -> None:
        pass

    @transition(field=status, source=[OrderStatus.SHIPPED, OrderStatus.IN_TRANSIT], target=OrderStatus.DELIVERED)
    def deliver(self) -> None:
        pass

    @transition(field=status, source=[OrderStatus.PLACED, OrderStatus.REVIEW, OrderStatus.READY], target=OrderStatus.CANCELLED)
    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason[:200]


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    sku = models.CharField(max_length=32)
    name = models.CharField(max_length=120)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="line_quantity_positive"),
            models.UniqueConstraint(fields=["order", "sku"], name="one_line_per_sku"),
        ]

    @property
    def line_total(self):
        return self.unit_price * self.quantity

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name} ({self.sku}) at {self.unit_price}"
