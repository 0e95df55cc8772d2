"""The base class of every pipeline task: retry policy, dead letters, request ids.

A task is a thin, idempotent entry point: it holds this policy and calls one
service. Transient failures (a gateway timeout, a lost database or broker
connection) are retried with exponential backoff and jitter, a bounded number of
times; a message that still fails is parked as a dead letter, with its payload
and error, and the order is flagged on its timeline. With
``task_acks_on_failure_or_timeout=False`` the broker message is rejected, never acked:
RabbitMQ moves it to the dead-letter exchange and the embedded broker to its
``dead_letters`` queue, so a message whose parking failed here (the database may be
what failed) is still parked later, by ``drain_broker``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import Task
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings
from django.db import InterfaceError, OperationalError

from shop.pipeline import faults
from shop.pipeline.errors import TransientError
from shop.pipeline.events import task_queues
from shop.pipeline.messaging import check_message
from shop.pipeline.request_context import bind_request_id, reset_request_id

log = logging.getLogger("shop.pipeline")
DATABASE_ERRORS = (OperationalError, InterfaceError)


@functools.cache
def _pipeline_tasks() -> frozenset[str]:
    return frozenset(task_queues())


class PipelineTask(Task):
    autoretry_for = (TransientError, *DATABASE_ERRORS)
    retry_backoff = True
    retry_backoff_max = settings.PIPELINE_RETRY_BACKOFF_MAX
    retry_jitter = True
    max_retries = settings.PIPELINE_MAX_RETRIES
    acks_late = True
    reject_on_worker_lost = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        headers = getattr(self.request, "headers", None) or {}
        request_id = headers.get("request_id") or getattr(self.request, "request_id", None)
        token = bind_request_id(request_id)
        order_id = str(kwargs.get("order_id") or "")
        log.info(
            "%s: %s for order %s (attempt %d)", self.name, kwargs.get("kind", "-"), order_id or "-", self.request.retries + 1
        )
        faults.maybe_crash(order_id, self.name)
        try:
            if self.name in _pipeline_tasks():
                check_message(kwargs)
            return super().__call__(*args, **kwargs)
        except DATABASE_ERRORS as exc:
            raise self._retry_past_budget(exc) from exc
        finally:
            reset_request_id(token)

    def _retry_past_budget(self, exc: BaseException) -> BaseException:
        """The database was away on the last attempt (retries used up by a gateway that kept
        timing out, then PostgreSQL restarting as the step gave up). What failed is our own
        store, not the step: retry, up to ``max_retries`` more times, rather than park a
        message that would succeed once the database is back."""
        retries = self.request.retries
        if not self.max_retries <= retries < 2 * self.max_retries:
            return exc
        countdown = get_exponential_backoff_interval(
            factor=1, retries=retries - self.max_retries, maximum=self.retry_backoff_max, full_jitter=True
        )
        log.warning("%s: the database is away on the last attempt; retrying in %d s", self.name, countdown)
        return self.retry(exc=exc, countdown=countdown, max_retries=retries + 1)

    @property
    def is_last_attempt(self) -> bool:
        return self.request.retries >= self.max_retries

    def _queue_name(self) -> str:
        """The queue the pipeline map gives this task; a retried message's routing key names
        Celery's delayed-delivery exchange instead, which is no queue staff know."""
        delivery = self.request.delivery_info or {}
        return task_queues().get(self.name) or str(delivery.get("routing_key") or "")[:64]

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        from shop.pipeline.deadletters import park

        log.error("task %s failed for order %s: %r", self.name, kwargs.get("order_id"), exc)
        try:
            park(
                task=self.name,
                queue=self._queue_name(),
                message_id=str(kwargs.get("event_id") or task_id),
                delivery_id=task_id,
                order_id=str(kwargs.get("order_id") or ""),
                kwargs=kwargs,
                error=repr(exc),
                traceback=str(einfo),
                attempts=self.request.retries + 1,
            )
        except Exception:  # the database itself may be what failed: the broker's dead-letter queue keeps the message
            log.exception("could not park dead letter for %s %s", self.name, task_id)
