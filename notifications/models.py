from django.db import models
from django.utils import timezone


class EmailKind(models.TextChoices):
    RECEIVED = "received", "Order received"
    SHIPPED = "shipped", "Order shipped"
    CANCELLED = "cancelled", "Order cancelled"


class SentEmail(models.Model):
    """One email per order and kind, and what became of it.

    SMTP has no idempotency key, so the row is claimed (``sending``) before the
    send and settled after it::

        pending -> sending -> sent
                     |-> pending   the server never took it (refused, timeout before the
                     |             content, 4xx): retried with backoff, ``attempts`` and ``last_error``
                     |-> failed    the server refused it for good (5xx): parked, a replay tries again
                     |-> in_doubt  no answer after the content, or a claim older than
                                   ``EMAIL_CLAIM_SECONDS`` with no outcome (the sender died mid-send)

    Only ``in_doubt`` needs a person: staff see it in the admin and may re-send it
    (``resends``, ``resent_by``, ``resent_at`` record that). Nothing else ever sends
    a second email for the same order and kind.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        IN_DOUBT = "in_doubt", "In doubt"

    order_id = models.CharField(max_length=32)
    kind = models.CharField(max_length=12, choices=EmailKind.choices)
    to = models.EmailField()
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True, help_text="What is sent, so that a re-send is the same email")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Claims taken to send it (each send attempt)")
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(default=timezone.now, help_text="When the current or last claim was taken")
    sent_at = models.DateTimeField(null=True, blank=True)
    resends = models.PositiveIntegerField(default=0, help_text="Re-sends by staff of an email in doubt")
    resent_by = models.CharField(max_length=150, blank=True)
    resent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["order_id", "kind"], name="one_email_per_order_and_kind")]
        indexes = [models.Index(fields=["status", "claimed_at"], name="sentemail_status_claimed")]

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
