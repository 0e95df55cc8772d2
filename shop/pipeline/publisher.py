"""Publishing one outbox row: a message per subscriber, each confirmed by the broker in bounded time.

The relay owns its broker connection (one per process) instead of borrowing Celery's pool,
so that after any failed publish it can drop the connection: a confirm that arrives late
on it must never be taken for the confirm of the next message.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import current_app as app  # the project's app (shop/celery.py), without importing the project
from django.conf import settings
from kombu import Producer

from shop.pipeline import faults
from shop.pipeline.events import subscribers
from shop.pipeline.request_context import bind_request_id, reset_request_id

log = logging.getLogger("shop.relay")


def messages_for(row: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(task, queue, message id, kwargs) for each subscriber of the row's event."""
    from shop.pipeline.events import task_queues

    if row["target_task"]:
        kwargs = dict(row["payload"]["kwargs"])
        task = row["target_task"]
        return [(task, task_queues()[task], f"{kwargs['event_id']}:{task}:replay{row['id']}", kwargs)]
    kwargs = {
        "event_id": str(row["event_id"]),
        "kind": row["kind"],
        "order_id": row["order_id"],
        "payload": row["payload"],
    }
    return [(s.task, s.queue, f"{row['event_id']}:{s.task}", kwargs) for s in subscribers(row["kind"])]


class ConfirmBoundProducer(Producer):
    """A producer whose every publish waits at most ``OUTBOX_CONFIRM_TIMEOUT`` for the broker's
    confirm: the task message and Celery's task-sent event after it, which shares the producer
    (py-amqp otherwise waits for a confirm forever)."""

    def publish(self, body: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("confirm_timeout") is None:
            kwargs["confirm_timeout"] = settings.OUTBOX_CONFIRM_TIMEOUT
        return super().publish(body, *args, **kwargs)


_producer: list[ConfirmBoundProducer] = []  # this process's own, dropped after any failure


def _get_producer() -> ConfirmBoundProducer:
    if not _producer:
        _producer.append(ConfirmBoundProducer(app.connection_for_write()))
    return _producer[0]


def drop_producer() -> None:
    """Close the relay's broker connection: a confirm that arrives late on it must never be
    taken for the confirm of the next message."""
    while _producer:
        try:
            _producer.pop().connection.release()
        except Exception:  # already broken: nothing to close cleanly
            log.debug("closing the relay's broker connection failed", exc_info=True)


@functools.cache
def _import_tasks() -> None:
    """Register every task (apply_async needs the task objects), as a worker does at start."""
    app.loader.import_default_modules()


def publish(row: dict[str, Any]) -> None:
    """Publish one event to each subscriber; returns only once the broker confirmed every copy."""
    copies = 2 if faults.enabled("duplicate_publish") else 1
    token = bind_request_id(row["request_id"] or None)  # the relay's own log lines name the request too
    try:
        _publish_copies(row, copies)
    finally:
        reset_request_id(token)


def _publish_copies(row: dict[str, Any], copies: int) -> None:
    _import_tasks()
    producer = _get_producer()
    for task, queue, message_id, kwargs in messages_for(row):
        for _ in range(copies):
            app.tasks[task].apply_async(
                kwargs=kwargs,
                task_id=message_id,
                queue=queue,
                headers={"request_id": row["request_id"] or None},
                producer=producer,
                confirm_timeout=settings.OUTBOX_CONFIRM_TIMEOUT,
                retry=True,  # once, on a fresh connection: the first publish after a broker restart can fail
                retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
            )


def broker_unreachable() -> bool:
    """After a failed publish: is it the broker that is away (then no row is to blame)?"""
    drop_producer()
    try:
        with app.connection_for_write() as conn:
            conn.connect()
    except Exception:
        return True
    return False
