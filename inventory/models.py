from django.db import models


class StockItem(models.Model):
    """Stock of one SKU. Conserved: received = available + reserved + shipped.

    The CHECK constraints are the backstop: even a buggy update cannot take
    stock below zero.
    """

    sku = models.CharField(max_length=32, unique=True)
    received = models.PositiveIntegerField(default=0)
    available = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    shipped = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=models.Q(available__gte=0), name="stock_available_not_negative"),
            models.CheckConstraint(condition=models.Q(reserved__gte=0), name="stock_reserved_not_negative"),
            models.CheckConstraint(condition=models.Q(shipped__gte=0), name="stock_shipped_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku}: {self.available} available"


class HoldStatus(models.TextChoices):
    PENDING = "pending"
    HELD = "held"
    UNAVAILABLE = "unavailable"
    RELEASED = "released"
    COMMITTED = "committed"


class StockHold(models.Model):
    """The stock an order holds. One per order, so a release that arrives before the
    reservation leaves a tombstone that the late reservation respects."""

    order_id = models.CharField(max_length=32, unique=True)
    status = models.CharField(max_length=12, choices=HoldStatus.choices, default=HoldStatus.PENDING)
    lines = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.status}"
