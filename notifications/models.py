from django.db import models


class EmailKind(models.TextChoices):
    RECEIVED = "received", "Order received"
    SHIPPED = "shipped", "Order shipped"
    CANCELLED = "cancelled", "Order cancelled"


class SentEmail(models.Model):
    """Claim-then-send: at most one email per order and kind.

    The row is committed as ``sending`` before the SMTP call and marked ``sent``
    after it. SMTP has no idempotency key, so a crash between the two cannot be
    settled automatically: the email is never sent twice, and one stuck in
    ``sending`` is listed by the audit for reconciliation.
    """

    class Status(models.TextChoices):
        SENDING = "sending"
        SENT = "sent"

    order_id = models.CharField(max_length=32)
    kind = models.CharField(max_length=12, choices=EmailKind.choices)
    to = models.EmailField()
    subject = models.CharField(max_length=200)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.SENDING)
    claimed_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["order_id", "kind"], name="one_email_per_order_and_kind")]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.to} ({self.status})"


class MailboxMessage(models.Model):
    """The demo's mailbox: what the email backend 'delivered' (SMTP in production)."""

    message_id = models.CharField(max_length=200)
    to = models.CharField(max_length=500)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    order_id = models.CharField(max_length=32, blank=True, db_index=True)
    kind = models.CharField(max_length=12, blank=True)
    delivered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.subject} -> {self.to}"
