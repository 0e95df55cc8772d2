"""Dead letters on RabbitMQ: a replayed message that is still poison is parked again.

The broker dead-letters a message when it is rejected without requeue (a task that failed)
or past the queue's delivery limit (a worker that crashed on it every time). Here a consumer
rejects the real message, so RabbitMQ itself moves it to the dead-letter exchange; the
drain, the replay and the relay are the project's own code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from shop.pipeline import deadletters, relay
from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.pipeline.outbox import emit
from tests import harness

pytestmark = [pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]

ORDER = "ORD-STILLPOISON"
STEP = "orders.tasks.apply_order_event"


def purge() -> None:
    from shop.celery import app
    from shop.pipeline.queues import declare_dead_letters

    with app.connection_for_write() as conn:
        declare_dead_letters(conn).purge()
        orders = app.amqp.queues["orders"](conn.default_channel)
        orders.declare()
        orders.purge()


@pytest.fixture
def broker(without_shared_pipeline: None, transactional_db: None) -> Iterator[None]:
    """No worker consumes: this test takes the messages off the queue itself."""
    purge()
    yield
    purge()


def reject_next(queue_name: str = "orders") -> dict[str, Any]:
    """Take the next message of the queue and reject it without requeue, as a failed task is:
    RabbitMQ dead-letters it. Returns its headers."""
    from shop.celery import app

    with app.connection_for_write() as conn:
        queue = app.amqp.queues[queue_name](conn.default_channel)
        message = harness.wait_until(lambda: queue.get(no_ack=False), 30, what=f"a message on {queue_name}")
        headers = dict(message.headers)
        message.reject(requeue=False)
    return headers


def publish_outbox() -> None:
    harness.wait_until(lambda: relay.relay_once("test-relay") or None, 30, what="the relay to publish")


def place_event() -> None:
    with transaction.atomic():
        emit("payment.authorized", order_id=ORDER, payload={"amount": "10.00"})
    publish_outbox()


def parked() -> list[DeadLetter]:
    return list(DeadLetter.objects.filter(order_id=ORDER, status=DeadLetter.Status.PARKED))


def drain_until_parked() -> list[DeadLetter]:
    return harness.wait_until(lambda: (deadletters.drain_broker(), parked())[1], 30, what="a parked dead letter")


def test_a_replay_that_is_dead_lettered_again_is_parked_again(broker: None) -> None:
    place_event()
    first_delivery = reject_next()
    [letter] = drain_until_parked()
    assert "dead-lettered by the broker" in letter.error
    assert letter.delivery_id == first_delivery["id"]

    assert deadletters.replay(letter.pk)  # staff replay; the message is still poison
    publish_outbox()
    replay_delivery = reject_next()
    assert replay_delivery["id"] != first_delivery["id"]

    [again] = drain_until_parked()  # before the fix: acked away, because a "replayed" row existed
    assert again.pk != letter.pk
    assert again.delivery_id == replay_delivery["id"]
    assert again.kwargs == letter.kwargs  # still replayable, with the original message id
    assert deadletters.replay(again.pk)


def test_the_copy_of_a_delivery_that_was_already_replayed_is_not_parked_twice(broker: None) -> None:
    """The task parked its message itself, then rejected it; staff replayed it before the drain
    ran. The broker's copy of that first delivery is accounted for: no second parked row."""
    place_event()
    first_delivery = reject_next()
    kwargs = {"event_id": str(OutboxEvent.objects.get(order_id=ORDER).event_id), "order_id": ORDER}
    letter = deadletters.park(
        task=STEP,
        queue="orders",
        message_id=kwargs["event_id"],
        delivery_id=first_delivery["id"],
        order_id=ORDER,
        kwargs=kwargs,
        error="RuntimeError('boom')",
        attempts=4,
    )
    assert letter is not None and deadletters.replay(letter.pk)

    from shop.celery import app
    from shop.pipeline.queues import declare_dead_letters

    def dead_letter_queue_empty() -> bool:
        deadletters.drain_broker()
        with app.connection_for_write() as conn:
            return declare_dead_letters(conn).queue_declare(passive=True).message_count == 0

    harness.wait_until(dead_letter_queue_empty, 30, what="the dead-letter queue to be drained")
    assert parked() == []
    assert DeadLetter.objects.filter(order_id=ORDER).count() == 1
