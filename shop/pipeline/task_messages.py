"""Celery's task messages for an outbox row: one per subscriber, as ``apply_async`` would send them.

Each message is built by Celery's own ``create_task_message`` and published where and as
``send_task_message`` would publish it (exchange, routing key, delivery mode, serializer), so a
worker cannot tell it from ``apply_async``'s (``tests/test_relay_confirms.py`` compares them on
the broker). What costs nothing to compute once is computed once: the routes per task, the
origin per process, the body per row (every subscriber of an event gets the same kwargs).
Celery's ``task-sent`` event is not sent: it cost a second confirmed publish per message, and
Flower builds its task list from the workers' own events.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import structlog
from celery import current_app as app  # the project's app (shop/celery.py), without importing the project
from celery.utils.saferepr import saferepr
from django.conf import settings
from kombu import Producer
from kombu.serialization import dumps

from shop.pipeline.events import subscribers

log = logging.getLogger("shop.relay")
Message = tuple[str, str, str, dict[str, Any]]  # task, queue, message id, kwargs


def messages_for(row: dict[str, Any]) -> list[Message]:
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


@functools.cache
def import_tasks() -> None:
    """Register every task (the messages name task objects' options), as a worker does at start."""
    app.loader.import_default_modules()


@functools.cache
def route(task_name: str, queue: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """What ``apply_async(queue=queue)`` computes before building the message: the task's limits and
    the router's exchange, routing key and queue. Cached: the routes are static settings."""
    task = app.tasks[task_name]  # NotRegistered: a replay naming a task this release does not have
    options = dict(task._get_exec_options(), queue=queue)
    options.setdefault("ignore_result", task.ignore_result)
    limits = {key: options.pop(key, None) for key in ("time_limit", "soft_time_limit", "expires", "ignore_result")}
    return limits, app.amqp.router.route(options, task_name, (), {}, task)


@functools.cache
def _destination(task_name: str, queue: str) -> dict[str, Any]:
    """Where ``send_task_message`` would publish the task's messages, and how: exchange, routing
    key, delivery mode, serializer. Computed once per task, as the routes are static settings."""
    _, options = route(task_name, queue)
    bound = options["queue"]
    exchange_type = getattr(bound.exchange, "type", "direct")
    exchange, routing_key = options.get("exchange"), options.get("routing_key")
    if (not exchange or not routing_key) and exchange_type == "direct":
        exchange, routing_key = "", bound.name
    elif exchange is None:
        exchange = bound.exchange.name or app.amqp.default_exchange
        routing_key = routing_key or bound.routing_key or app.conf.task_default_routing_key
    return {
        "exchange": exchange,
        "routing_key": routing_key,
        "delivery_mode": getattr(bound.exchange, "delivery_mode", None) or app.conf.task_default_delivery_mode,
        "serializer": options.get("serializer") or app.conf.task_serializer,
        "compression": app.conf.task_compression,
    }


@functools.cache
def _origin(pid: int) -> str:
    """The ``origin`` header Celery names the publishing process with (per pid: a fork is another)."""
    from celery.utils.nodenames import anon_nodename

    return anon_nodename()


@functools.cache
def _log_context_enabled() -> bool:
    return bool(getattr(settings, "DJANGO_STRUCTLOG_CELERY_ENABLED", False))


@functools.cache
def _repr_maxlevels() -> int:
    return app.conf.task_repr_maxlevels


def _log_context_header() -> dict[str, Any]:
    """The header django-structlog's ``before_task_publish`` receiver adds (the log context, the
    request id in it), so that a worker's log lines carry it; {} where that integration is off."""
    if not _log_context_enabled():
        return {}
    from django_structlog.tasks.receivers import BaseTaskReceiver

    return {"__django_structlog__": BaseTaskReceiver().get_task_context()}


def publish_row(producer: Producer, row: dict[str, Any], copies: int) -> int:
    """Publish every message of the row (without waiting); returns how many went out.

    Each message is Celery's own (``create_task_message``), published where and as
    ``send_task_message`` would publish it, but without its publish signals: their one receiver
    here, django-structlog, adds the log-context header, added once per row instead of once per
    message, and logs each message at debug level (a sixth of the relay's CPU together, measured
    with py-spy): the relay logs the same ``task_enqueued`` line itself, and only when debug is on.
    The subscribers' bodies are the same: serialized once."""
    sent = 0
    debug = log.isEnabledFor(logging.DEBUG)
    messages = messages_for(row)
    kwargsrepr = kwargsrepr_of(messages[0][3]) if messages else ""  # every subscriber gets the same kwargs
    headers = {"request_id": row["request_id"] or None, "emitted_at": _epoch(row.get("created_at")), **_log_context_header()}
    encoded: tuple[Any, Any] | None = None  # (body, its serialized form)
    for task, queue, message_id, kwargs in messages:
        limits, options = route(task, queue)
        message_headers, properties, body, _ = app.amqp.create_task_message(
            message_id,
            task,
            (),
            kwargs,
            reply_to=app.thread_oid,
            create_sent_event=False,
            argsrepr="()",  # saferepr(()), as Celery would compute it for every message
            kwargsrepr=kwargsrepr,
            origin=_origin(os.getpid()),
            **limits,
            **options,
        )
        message_headers.update(headers)
        where = _destination(task, queue)
        if encoded is None or encoded[0] != body:
            encoded = (body, dumps(body, serializer=where["serializer"]))
        content_type, content_encoding, data = encoded[1]
        for _ in range(copies):
            producer.publish(
                data,
                exchange=where["exchange"],
                routing_key=where["routing_key"],
                content_type=content_type,
                content_encoding=content_encoding,
                compression=where["compression"],
                retry=False,
                delivery_mode=where["delivery_mode"],
                declare=(),  # the link declared every queue
                headers=message_headers,
                **properties,
            )
            sent += 1
        if debug:  # django-structlog's line, with the request id bound by the caller
            structlog.get_logger(log.name).debug("task_enqueued", child_task_id=message_id, child_task_name=task)
    return sent


def _epoch(at: Any) -> float | None:
    """The row's write time for the stage-latency histogram (shop/pipeline/latency_metrics.py)."""
    return at.timestamp() if at is not None else None


SUMMARY_KEYS = ("event_id", "kind", "order_id")


def kwargsrepr_of(kwargs: dict[str, Any]) -> str:
    """The ``kwargsrepr`` header, which Flower shows as the task's arguments: the event's id, kind
    and order, and never its payload (the customer's email, name and address stay out of the
    monitoring tools). Written by hand, as ``repr`` writes a dict of strings: Celery's
    ``saferepr`` of the whole payload was a seventh of the relay's CPU (py-spy), and the long
    header it made cost again when the headers were serialised."""
    if set(SUMMARY_KEYS) <= kwargs.keys() and all(isinstance(kwargs[key], str) for key in SUMMARY_KEYS):
        shown = ", ".join(f"{key!r}: {kwargs[key]!r}" for key in SUMMARY_KEYS)
        return "{" + shown + (", 'payload': '…'}" if "payload" in kwargs else "}")
    return saferepr(kwargs, app.amqp.kwargsrepr_maxsize, maxlevels=_repr_maxlevels())
