"""Messages: the outbox drains, every event reaches every subscriber, dead letters are few
and accounted for, and a replay or a staff re-drive finishes.

Tables: shop_outboxevent, shop_processedmessage (the idempotent consumers' records),
shop_deadletter, and the pipeline map (shop/pipeline/events.py).
"""

from __future__ import annotations

import uuid

from orders.services import HANDLER as ORDER_HANDLER
from shop.pipeline.events import ORDER_STEP, PIPELINE
from shop.pipeline.models import DeadLetter, OutboxEvent, ProcessedMessage
from shop.proof.audit.base import Context, Report, rows

# The name a task's consumer records in the processed-message table, where it is not the task's own.
HANDLER_OF = {ORDER_STEP: ORDER_HANDLER}


def handler_of(task: str) -> str:
    return HANDLER_OF.get(task, task)


def outbox_stuck(ctx: Context, report: Report) -> None:
    for event in OutboxEvent.objects.filter(published_at__isnull=True, parked_at__isnull=True, created_at__lt=ctx.stale):
        since = f"{event.created_at:%H:%M:%S}"
        report.bad("outbox-stuck", event.order_id, f"{event.kind} unpublished since {since}: {event.last_error[:80]}")


def dead_letters(ctx: Context, report: Report) -> None:
    parked = list(DeadLetter.objects.filter(status=DeadLetter.Status.PARKED))
    for letter in parked[ctx.allowed_dead_letters :]:
        report.bad("dead-letter", letter.order_id, f"{letter.task}: {letter.error[:120]}")


def unprocessed_events(ctx: Context, report: Report) -> None:
    """Quiet only. Each published event x each of its subscribers in the pipeline map has a
    processed-message record, unless that message was parked as a dead letter (reported there)."""
    expected = [(s.event, s.task, handler_of(s.task)) for s in PIPELINE]
    values = ", ".join(["(%s, %s, %s)"] * len(expected))
    sql = f"""
        WITH expected(kind, task, handler) AS (VALUES {values})
        SELECT e.order_id, e.kind, e.event_id, x.task
          FROM {OutboxEvent._meta.db_table} e JOIN expected x ON x.kind = e.kind
         WHERE e.published_at IS NOT NULL AND e.target_task = '' AND e.published_at < %s
           AND NOT EXISTS (SELECT 1 FROM {ProcessedMessage._meta.db_table} p
                            WHERE p.message_id = e.event_id AND p.handler = x.handler)
           AND NOT EXISTS (SELECT 1 FROM {DeadLetter._meta.db_table} d
                            WHERE d.message_id = e.event_id::text AND d.task = x.task)
         ORDER BY e.id"""
    params = [v for row in expected for v in row] + [ctx.settled]
    for order_id, kind, event_id, task in rows(sql, params):
        report.bad("event-not-processed", order_id, f"{kind} {event_id} never processed by {task}")


def unfinished_replays(ctx: Context, report: Report) -> None:
    """Quiet only. A replayed dead letter was processed by its task, or failed again and was parked again."""
    replayed = DeadLetter.objects.filter(status=DeadLetter.Status.REPLAYED, replayed_at__lt=ctx.settled)
    for letter in replayed:
        if _replay_done(letter):
            continue
        when = f"{letter.replayed_at:%H:%M:%S}"
        report.bad("replay-unfinished", letter.order_id, f"{letter.task} replayed at {when}, never finished")


def _replay_done(letter: DeadLetter) -> bool:
    again = DeadLetter.objects.filter(task=letter.task, message_id=letter.message_id, created_at__gt=letter.replayed_at)
    parked_again = again.exclude(pk=letter.pk)
    if parked_again.exists():
        return True
    try:
        message_id = uuid.UUID(letter.message_id)
    except ValueError:
        return False  # no event id: nothing could have recorded it as processed
    return ProcessedMessage.objects.filter(message_id=message_id, handler=handler_of(letter.task)).exists()


def unfinished_redrives(ctx: Context, report: Report) -> None:
    """Quiet only. A staff re-drive (``stage.redriven`` sent to its task) was processed by that
    task under its new message id, or failed and was parked (``shop/pipeline/redrive.py``)."""
    sql = f"""
        SELECT e.order_id, e.event_id, e.target_task
          FROM {OutboxEvent._meta.db_table} e
         WHERE e.kind = 'stage.redriven' AND e.target_task <> '' AND e.published_at IS NOT NULL
           AND e.published_at < %s
         ORDER BY e.id"""
    for order_id, event_id, task in rows(sql, [ctx.settled]):
        processed = ProcessedMessage.objects.filter(message_id=event_id, handler=handler_of(task)).exists()
        if not processed and not DeadLetter.objects.filter(message_id=str(event_id), task=task).exists():
            report.bad("redrive-unfinished", order_id, f"{task} re-driven as {event_id}, never finished")
