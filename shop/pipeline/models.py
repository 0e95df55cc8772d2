"""The pipeline's tables: the outbox, the processed-message record, dead letters and the fault
switches. They keep their ``shop_*`` table names from before the pipeline was its own app."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Now


class OutboxEvent(models.Model):
    """A domain event, written in the same transaction as the change it describes.

    It is both the message the relay publishes and the entry on the order's
    timeline: one meaning of "event" in the whole project.
    """

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=64, db_index=True)
    order_id = models.CharField(max_length=32, db_index=True, help_text="The order's public id")
    payload = models.JSONField(default=dict)
    message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Relay bookkeeping: a lease, not a cursor, so rows committed out of id order are never skipped.
    claimed_by = models.CharField(max_length=64, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # When the relay may take the row next: its insert time, then the end of a lease or of the
    # row's own backoff after a failed publish, so one failing row never holds up the others.
    next_attempt_at = models.DateTimeField(db_default=Now())
    # Set when the row failed too often: the relay leaves it to staff (see the dead letter it left).
    parked_at = models.DateTimeField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # Set only for a replayed dead letter: publish to this one task, with payload["kwargs"].
    target_task = models.CharField(max_length=120, blank=True)

    class Meta:
        db_table = "shop_outboxevent"  # kept from the ``shop`` app, which owned it first
        ordering = ["id"]
        indexes = [
            # The relay's claim: due rows first (``ORDER BY next_attempt_at, id``), among those still to publish.
            models.Index(
                fields=["next_attempt_at", "id"],
                name="outbox_due",
                condition=models.Q(published_at__isnull=True, parked_at__isnull=True),
            ),
            # The parked rows, few, counted every second by the backlog figures (shop/pipeline/backlog.py).
            models.Index(fields=["parked_at"], name="outbox_parked", condition=models.Q(parked_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.order_id}"


class ProcessedMessage(models.Model):
    """The idempotent-consumer record: (message, handler) is processed at most once."""

    message_id = models.UUIDField()
    handler = models.CharField(max_length=120)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "shop_processedmessage"  # kept from the ``shop`` app, which owned it first
        constraints = [models.UniqueConstraint(fields=["message_id", "handler"], name="processed_once")]


class DeadLetter(models.Model):
    """A message that kept failing after its retries: parked for staff to inspect and replay."""

    class Status(models.TextChoices):
        PARKED = "parked"
        REPLAYED = "replayed"
        DISCARDED = "discarded"

    task = models.CharField(max_length=120)
    queue = models.CharField(max_length=64, blank=True)
    message_id = models.CharField(max_length=100)
    # The broker delivery that failed (the task id): a replay is a new delivery of the same message,
    # so a broker dead-letter copy is matched to its delivery, not just to its message.
    delivery_id = models.CharField(max_length=200, blank=True)
    order_id = models.CharField(max_length=32, blank=True, db_index=True)
    kwargs = models.JSONField(default=dict)
    error = models.TextField()
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PARKED)
    created_at = models.DateTimeField(auto_now_add=True)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "shop_deadletter"  # kept from the ``shop`` app, which owned it first
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id", "task"], condition=models.Q(status="parked"), name="one_parked_per_message"
            )
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.order_id}: {self.error[:60]}"


class FaultSetting(models.Model):
    """A runtime fault switch set by staff; overrides the environment default (see shop/pipeline/faults.py)."""

    name = models.CharField(max_length=64, unique=True)
    value = models.CharField(max_length=200)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "shop_faultsetting"  # kept from the ``shop`` app, which owned it first

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class RelayHeartbeat(models.Model):
    """A relay's sign of life, written every few seconds by the relay itself
    (``shop/pipeline/heartbeat.py``): the operations page tells a relay that is alive from one
    that stopped or hangs, which the outbox's backlog alone cannot (it is also 0 when idle)."""

    relay_id = models.CharField(max_length=120, unique=True)  # host:pid
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    published = models.PositiveBigIntegerField(default=0)  # rows published since it started
    stopped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"relay {self.relay_id}"


class QueuePause(models.Model):
    """A stage held by staff (``shop/pipeline/consumers.py``): who paused which queue, when, on
    which workers, and who resumed it. Open until resumed; the operations page says who holds a
    paused stage and since when, which the broker's consumer count alone cannot."""

    queue = models.CharField(max_length=64, db_index=True)
    paused_by = models.CharField(max_length=150)
    paused_at = models.DateTimeField(auto_now_add=True)
    workers = models.CharField(max_length=500)  # the workers that answered the pause
    resumed_by = models.CharField(max_length=150, blank=True)
    resumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.queue} paused by {self.paused_by}"
