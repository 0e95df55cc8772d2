from django.db import models
from django.utils import timezone


class ShipmentStatus(models.TextChoices):
    PENDING = "pending"  # a label is being bought
    CREATED = "created"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Shipment(models.Model):
    order_id = models.CharField(max_length=32, unique=True)
    status = models.CharField(max_length=12, choices=ShipmentStatus.choices, default=ShipmentStatus.PENDING)
    carrier = models.CharField(max_length=32, default="Parcelsim")
    tracking_number = models.CharField(max_length=32, blank=True)
    address = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The carrier poll takes open shipments by this time, oldest first, and moves it on
    # each poll: a round robin, so every open shipment is polled however many there are.
    next_poll_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["next_poll_at", "id"],
                name="shipment_poll_due",
                condition=models.Q(status__in=["created", "in_transit"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.tracking_number} {self.status}"


class CarrierParcel(models.Model):
    """The simulated carrier's own ledger: one parcel per idempotency key."""

    idempotency_key = models.CharField(max_length=64, unique=True)
    tracking_number = models.CharField(max_length=32, unique=True)
    address = models.JSONField(default=dict)
    cancelled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
