"""Dead letters: park a message that kept failing, and replay it on a staff action.

Three things park: a task that failed for good (``PipelineTask.on_failure``), the broker
(a message past its delivery limit, or rejected by a task that could not park it itself:
RabbitMQ's dead-letter exchange, or the embedded broker's ``dead_letters`` queue, both
drained by :func:`drain_broker`), and the relay, for an outbox row it failed to publish too
often (``task`` is :data:`RELAY_STEP`; a replay hands the row back to the relay).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app as app  # the project's app (shop/celery.py), without importing the project
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.pipeline.outbox import emit

log = logging.getLogger("shop.deadletters")

# The "task" of a dead letter the relay left: an outbox row that could not be published.
RELAY_STEP = "shop.publisher.publish"


def park(
    *,
    task: str,
    queue: str,
    message_id: str,
    order_id: str,
    kwargs: dict[str, Any],
    error: str,
    traceback: str = "",
    attempts: int = 0,
    delivery_id: str = "",
) -> DeadLetter | None:
    """Record the failed message and flag its order on the timeline (once per message)."""
    try:
        with transaction.atomic():
            letter = DeadLetter.objects.create(
                task=task[:120],
                queue=queue[:64],
                message_id=message_id[:100],
                delivery_id=delivery_id[:200],
                order_id=order_id[:32],
                kwargs=kwargs,
                error=error[:4000],
                traceback=traceback[-20000:],
                attempts=attempts,
            )
            if order_id:
                emit(
                    "order.flagged",
                    order_id=order_id[:32],
                    payload={"task": task, "error": error[:500], "dead_letter": letter.pk},
                    message=f"Step {task.rsplit('.', 1)[-1]} failed after {attempts} attempts; parked for replay",
                )
            return letter
    except IntegrityError:  # already parked
        return None


def replay(letter_id: int, *, staff: str = "") -> bool:
    """Publish the parked message again, through the outbox, with its original message id.

    The processed-message record makes this safe: a handler that did in fact
    finish will not act twice. A letter the relay left gives its outbox row back to the relay.
    ``staff`` is the name the order's timeline records for the replay.
    """
    who = staff or "Staff"
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().get(pk=letter_id)
        if letter.status != DeadLetter.Status.PARKED:
            return False
        letter.status = DeadLetter.Status.REPLAYED
        letter.replayed_at = timezone.now()
        letter.save(update_fields=["status", "replayed_at"])
        if letter.task == RELAY_STEP:
            _retry_outbox_row(letter, who)
            return True
        emit(
            "message.replayed",
            order_id=letter.order_id,
            payload={"kwargs": letter.kwargs, "dead_letter": letter.pk, "staff": staff},
            message=f"{who} replayed {letter.task.rsplit('.', 1)[-1]}",
            target_task=letter.task,
        )
    return True


def _retry_outbox_row(letter: DeadLetter, who: str) -> None:
    """Un-park the outbox row: due at once, with a fresh count of attempts."""
    OutboxEvent.objects.filter(pk=letter.kwargs.get("outbox_id"), published_at__isnull=True).update(
        parked_at=None, publish_attempts=0, next_attempt_at=timezone.now(), claimed_by="", claimed_until=None
    )
    emit(
        "message.replayed",
        order_id=letter.order_id,
        payload={"outbox_id": letter.kwargs.get("outbox_id"), "dead_letter": letter.pk, "staff": who},
        message=f"{who} retried publishing {letter.kwargs.get('kind', 'an event')}",
    )


def accounted_for(*, task: str, message_id: str, delivery_id: str) -> bool:
    """Whether a broker dead-letter copy adds nothing: the message is parked now, or this very
    delivery was parked before (and perhaps replayed since). A replay is a new delivery: if it
    is dead-lettered too, it is parked again."""
    same = DeadLetter.objects.filter(task=task, message_id=message_id)
    return same.filter(Q(status=DeadLetter.Status.PARKED) | Q(delivery_id=delivery_id)).exists()


def drain_broker(limit: int = 100) -> int:
    """Move messages the broker dead-lettered (delivery limit reached: a poison message that
    kept killing its worker; or rejected by a task that failed and could not park it) from the
    dead-letter queue into ``DeadLetter`` rows, where staff see and replay them. A message is
    taken off the queue only once it is parked. Returns how many were moved."""
    from shop.pipeline.queues import declare_dead_letters

    moved = 0
    with app.connection_for_write() as conn:
        queue = declare_dead_letters(conn)
        for _ in range(limit):
            message = queue.get(no_ack=False, accept=["json"])
            if message is None:
                break
            try:
                moved += _park_copy(message)
            except DatabaseError:
                message.requeue()  # kept on the broker; parked on a later pass
                log.warning("could not park a dead-lettered message yet", exc_info=True)
                break
            message.ack()
    return moved


def _park_copy(message: Any) -> int:
    """Park one broker dead-letter copy unless it adds nothing; 1 if it was parked."""
    from shop.pipeline.events import task_queues

    headers = message.headers or {}
    body = message.decode()
    kwargs = body[1] if isinstance(body, list | tuple) and len(body) > 1 and isinstance(body[1], dict) else {}
    death = (headers.get("x-death") or [{}])[0]
    task = str(headers.get("task", "?"))
    delivery_id = str(headers.get("id", ""))
    message_id = str(kwargs.get("event_id") or delivery_id)
    if task not in task_queues():
        # Not a pipeline step: a periodic carrier poll that expired in the queue. The next one replaces it.
        return 0
    if accounted_for(task=task, message_id=message_id, delivery_id=delivery_id):
        return 0
    count = headers.get("x-delivery-count") or death.get("count") or 0
    park(
        task=task,
        queue=str(death.get("queue", "")),
        message_id=message_id,
        delivery_id=delivery_id,
        order_id=str(kwargs.get("order_id", "")),
        kwargs=kwargs,
        error=f"dead-lettered by the broker: {death.get('reason', 'rejected')} after {count or '?'} deliveries",
        attempts=int(count),
    )
    return 1
