"""A task that does nothing, for the Celery ceiling: what a worker costs per message.

Imported only by the ceiling's worker (``--include bench.noop``), so the shop's own
workers never register it. That worker consumes :data:`QUEUE` as a quorum queue with
the shop's queue arguments, like the shop's queues on RabbitMQ.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task, signals
from kombu import Exchange, Queue

from shop.pipeline.queues import quorum_arguments

QUEUE = "bench_ceiling_noop"
EXCHANGE = "bench_ceiling"
TASK = "bench.noop.noop"


def bench_queue(name: str = QUEUE, *, rabbitmq: bool) -> Queue:
    """The queue as the shop declares its own: durable, quorum with a delivery limit on RabbitMQ."""
    exchange = Exchange(EXCHANGE, type="topic", durable=True)
    return Queue(name, exchange, routing_key=name, durable=True, queue_arguments=quorum_arguments() if rabbitmq else None)


@shared_task(name=TASK)
def noop(**kwargs: Any) -> None:
    """Nothing: the time a worker spends on it is the worker's own."""


@signals.worker_init.connect
def _consume_as_quorum(sender: Any, **kwargs: Any) -> None:
    """``-Q bench_ceiling_noop`` names a queue the shop's settings do not have, which Celery
    would declare as a classic queue; replace it with the one the ceiling published to."""
    from shop.pipeline.queues import is_rabbitmq

    queues = sender.app.amqp.queues
    if QUEUE in (queues.consume_from or {}):
        queues.select_add(bench_queue(rabbitmq=is_rabbitmq(sender.app.conf.broker_url)))
