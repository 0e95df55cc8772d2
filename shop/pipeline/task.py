"""The base class of every pipeline task: retry policy, dead letters, request ids.

A task is a thin, idempotent entry point: it holds this policy and calls one
service. Transient failures (a gateway timeout, a lost database or broker
connection) are retried with exponential backoff and equal jitter (half of each step
fixed, half random), a bounded number of times, so that the retries of a step span at
least half its schedule: with the defaults (8 retries, steps capped at 60 s) at least
91 s, longer than a one-minute gateway outage. Celery's own ``retry_backoff`` draws
full jitter, where every wait may be zero: 13% of the steps caught by a 60 s outage ran
out of retries inside it, measured. A message that still fails is parked as a dead letter, with its payload
and error, and the order is flagged on its timeline. With
``task_acks_on_failure_or_timeout=False`` the broker message is rejected, never acked:
RabbitMQ moves it to the dead-letter exchange and the embedded broker to its
``dead_letters`` queue, so a message whose parking failed here (the database may be
what failed) is still parked later, by ``drain_broker``.
"""

from __future__ import annotations

import functools
import logging
import math
import random
from typing import Any

from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from shop.pipeline import faults
from shop.pipeline.errors import TransientError
from shop.pipeline.events import task_queues
from shop.pipeline.latency_metrics import observe_stage
from shop.pipeline.messaging import check_message
from shop.pipeline.request_context import bind_request_id, reset_request_id
from shop.pipeline.task_messages import kwargsrepr_of

log = logging.getLogger("shop.pipeline")
DATABASE_ERRORS = (OperationalError, InterfaceError)


@functools.cache
def _pipeline_tasks() -> frozenset[str]:
    return frozenset(task_queues())


def backoff(retries: int, maximum: float) -> int:
    """The wait before retry ``retries + 1``: a step of ``2**retries`` seconds capped at
    ``maximum``, half of it fixed and half random (spreads a herd of retries without
    letting any of them come back at once), in whole seconds, as delayed delivery counts."""
    step = min(maximum, 2.0**retries)
    return max(1, math.ceil(step / 2 + random.uniform(0, step / 2)))


class PipelineTask(Task):
    retry_for = (TransientError, *DATABASE_ERRORS)
    retry_backoff_max = settings.PIPELINE_RETRY_BACKOFF_MAX
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
            pipeline = self.name in _pipeline_tasks()
            if pipeline:
                check_message(kwargs)
            result = super().__call__(*args, **kwargs)
            if pipeline:
                emitted_at = headers.get("emitted_at") or getattr(self.request, "emitted_at", None)
                observe_stage(self.name, self._queue_name(), emitted_at)
            return result
        except self.retry_for as exc:
            raise self._retry(exc) from exc
        finally:
            reset_request_id(token)

    def apply_async(self, args: Any = None, kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        """A retry is published here too: its ``kwargsrepr`` header stays the relay's summary, so
        that Flower never shows a payload (``task_messages.kwargsrepr_of``)."""
        options.setdefault("kwargsrepr", kwargsrepr_of(kwargs or {}))
        return super().apply_async(args, kwargs, **options)

    def _retry(self, exc: BaseException) -> BaseException:
        """Retry with the pipeline's backoff; past ``max_retries`` Celery raises ``exc`` itself,
        the task fails and ``on_failure`` parks it."""
        retries = self.request.retries
        if retries >= self.max_retries and isinstance(exc, DATABASE_ERRORS):
            return self._retry_past_budget(exc)
        return self.retry(exc=exc, countdown=backoff(retries, self.retry_backoff_max))

    def _retry_past_budget(self, exc: BaseException) -> BaseException:
        """The database was away on the last attempt (retries used up by a gateway that kept
        timing out, then PostgreSQL restarting as the step gave up). What failed is our own
        store, not the step: retry, up to ``max_retries`` more times, rather than park a
        message that would succeed once the database is back."""
        retries = self.request.retries
        if not self.max_retries <= retries < 2 * self.max_retries:
            return exc
        countdown = backoff(retries - self.max_retries, self.retry_backoff_max)
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
