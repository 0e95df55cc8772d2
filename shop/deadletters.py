"""Dead letters: park a message that kept failing, and replay it on a staff action."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from shop.models import DeadLetter
from shop.outbox import emit


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
) -> DeadLetter | None:
    """Record the failed message and flag its order on the timeline (once per message)."""
    try:
        with transaction.atomic():
            letter = DeadLetter.objects.create(
                task=task,
                queue=queue,
                message_id=message_id,
                order_id=order_id,
                kwargs=kwargs,
                error=error[:4000],
                traceback=traceback[-20000:],
                attempts=attempts,
            )
            if order_id:
                emit(
                    "order.flagged",
                    order_id=order_id,
                    payload={"task": task, "error": error[:500], "dead_letter": letter.pk},
                    message=f"Step {task.rsplit('.', 1)[-1]} failed after {attempts} attempts; parked for replay",
                )
            return letter
    except IntegrityError:  # already parked
        return None


def replay(letter_id: int) -> bool:
    """Publish the parked message again, through the outbox, with its original message id.

    The processed-message record makes this safe: a handler that did in fact
    finish will not act twice.
    """
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().get(pk=letter_id)
        if letter.status != DeadLetter.Status.PARKED:
            return False
        letter.status = DeadLetter.Status.REPLAYED
        letter.replayed_at = timezone.now()
        letter.save(update_fields=["status", "replayed_at"])
        emit(
            "message.replayed",
            order_id=letter.order_id,
            payload={"kwargs": letter.kwargs, "dead_letter": letter.pk},
            message=f"Staff replayed {letter.task.rsplit('.', 1)[-1]}",
            target_task=letter.task,
        )
    return True


def drain_broker(limit: int = 100) -> int:
    """Move messages that RabbitMQ dead-lettered (delivery limit reached: a poison message
    that kept killing its worker) from the dead-letter queue into ``DeadLetter`` rows,
    where staff see and replay them. Returns how many were moved."""
    from shop.celery import app
    from shop.events import task_queues
    from shop.queues import declare_dead_letters, is_rabbitmq

    if not is_rabbitmq(app.conf.broker_url):
        return 0
    moved = 0
    with app.connection_for_write() as conn:
        queue = declare_dead_letters(conn)
        for _ in range(limit):
            message = queue.get(no_ack=False, accept=["json"])
            if message is None:
                break
            headers = message.headers or {}
            body = message.decode()
            kwargs = body[1] if isinstance(body, list | tuple) and len(body) > 1 and isinstance(body[1], dict) else {}
            death = (headers.get("x-death") or [{}])[0]
            task = str(headers.get("task", "?"))
            message_id = str(kwargs.get("event_id") or headers.get("id", ""))
            if task not in task_queues():
                # Not a pipeline step: a periodic carrier poll that expired in the queue. The next one replaces it.
                message.ack()
                continue
            if DeadLetter.objects.filter(task=task, message_id=message_id).exists():
                # The task parked it itself before rejecting it: this copy adds nothing.
                message.ack()
                continue
            park(
                task=task,
                queue=str(death.get("queue", "")),
                message_id=message_id,
                order_id=str(kwargs.get("order_id", "")),
                kwargs=kwargs,
                error=f"dead-lettered by the broker: {death.get('reason', 'rejected')} "
                f"after {headers.get('x-delivery-count', death.get('count', '?'))} deliveries",
                attempts=int(headers.get("x-delivery-count") or death.get("count") or 0),
            )
            message.ack()
            moved += 1
    return moved
