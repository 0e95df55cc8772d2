"""The order's payment, and the simulated gateway's own ledger.

``Payment`` is ours. ``GatewayCard`` and ``GatewayTransaction`` stand for the
payment provider's side: in production they live in someone else's data
centre; here they let the audit check "at most one charge per order" against
what the gateway itself recorded.
"""

from __future__ import annotations

from django.db import models


class PaymentStatus(models.TextChoices):
    PENDING = "pending"
    AUTHORIZING = "authorizing"  # a gateway call is, or may be, in flight
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    FAILED = "failed"  # gave up on the gateway; it may or may not have authorised
    CAPTURING = "capturing"
    CAPTURED = "captured"
    VOIDING = "voiding"
    VOIDED = "voided"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"  # the order was cancelled before any money moved


class Payment(models.Model):
    order_id = models.CharField(max_length=32, unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    card_token = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    # Set when the order is cancelled while a gateway call is in flight: whoever
    # finishes that call undoes it.
    cancel_requested = models.BooleanField(default=False)
    authorization_id = models.CharField(max_length=64, blank=True)
    decline_code = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Payment {self.order_id} {self.status}"

    def key(self, operation: str) -> str:
        """The idempotency key for one operation on this payment: stable across retries."""
        return f"{operation}-{self.order_id}"


class GatewayCard(models.Model):
    """The gateway's vault: a token stands for a card. The shop never sees the number again."""

    token = models.CharField(max_length=64, unique=True)
    brand = models.CharField(max_length=20)
    last4 = models.CharField(max_length=4)
    country = models.CharField(max_length=2)
    behaviour = models.CharField(max_length=24)
    created_at = models.DateTimeField(auto_now_add=True)


class GatewayTransaction(models.Model):
    """The gateway's ledger, one row per idempotency key, holding the stored response."""

    idempotency_key = models.CharField(max_length=100, unique=True)
    operation = models.CharField(max_length=16)  # authorize, capture, void, refund
    reference = models.CharField(max_length=64, db_index=True)  # the merchant's order id
    request_hash = models.CharField(max_length=64)
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    approved = models.BooleanField()
    authorization_id = models.CharField(max_length=64, blank=True)
    decline_code = models.CharField(max_length=64, blank=True)
    card_token = models.CharField(max_length=64, blank=True)  # the card an authorisation holds money on
    created_at = models.DateTimeField(auto_now_add=True)
