"""Queue declarations: durable quorum queues with a delivery limit and a
dead-letter exchange on RabbitMQ, plain queues on the embedded broker (which applies
the same limit and dead-letter queue itself: see ``shop/local/fs_transport.py``)."""

from __future__ import annotations

from kombu import Connection, Exchange, Queue

from shop.pipeline.events import QUEUES, task_queues

DEAD_LETTER_EXCHANGE = "dlx"
DEAD_LETTER_QUEUE = "dead_letters"
# After this many deliveries (a poison message that crashes its worker each
# time) RabbitMQ dead-letters the message instead of looping forever.
DELIVERY_LIMIT = 10


def is_rabbitmq(url: str) -> bool:
    return url.startswith(("amqp://", "amqps://", "pyamqp://"))


def quorum_arguments() -> dict[str, object]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def celery_queues(*, rabbitmq: bool) -> tuple[Queue, ...]:
    # A topic exchange: Celery's native delayed delivery (retries with backoff on
    # quorum queues) does not work with direct exchanges.
    exchange = Exchange("pipeline", type="topic", durable=True)
    args = quorum_arguments() if rabbitmq else None
    queues = [Queue(name, exchange, routing_key=name, durable=True, queue_arguments=args) for name in QUEUES]
    return tuple(queues)


def celery_routes() -> dict[str, dict[str, str]]:
    routes = {task: {"queue": queue, "routing_key": queue} for task, queue in task_queues().items()}
    routes["shipping.tasks.poll_carrier"] = {"queue": "shipping", "routing_key": "shipping"}
    routes["shop.tasks.*"] = {"queue": "orders", "routing_key": "orders"}
    return routes


def declare_dead_letters(connection: Connection) -> Queue:
    """Declare the dead-letter exchange and its queue, where RabbitMQ parks poison messages."""
    dlx = Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True)
    queue = Queue(DEAD_LETTER_QUEUE, dlx, durable=True, queue_arguments={"x-queue-type": "quorum"})(connection.default_channel)
    queue.declare()
    return queue
