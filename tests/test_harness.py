"""The tests' own helpers, where a fault in them would hide a fault of the project."""

from __future__ import annotations

import pytest

from shop.celery import app
from shop.pipeline.events import QUEUES
from shop.pipeline.queues import DEAD_LETTER_QUEUE, declare_dead_letters
from tests import harness

pytestmark = pytest.mark.rabbitmq


def depth(name: str) -> int:
    with app.connection_for_write() as conn:
        return conn.default_channel.queue_declare(queue=name, passive=True).message_count


def test_an_emptied_broker_holds_nothing_an_earlier_test_left() -> None:
    leftovers = ["shipping", DEAD_LETTER_QUEUE]
    with app.connection_for_write() as conn:
        declare_dead_letters(conn)
        try:  # a retry waiting for its countdown, where Celery's native delayed delivery keeps it
            conn.default_channel.queue_declare(queue="celery_delayed_3", passive=True)
            leftovers.append("celery_delayed_3")
        except conn.channel_errors:
            pass  # no countdown has been published on this vhost yet
    with app.connection_for_write() as conn:  # its own: the pool's may have died with a broker restart of an earlier test
        producer = conn.Producer()
        for name in leftovers:
            declare = [app.amqp.queues[name]] if name in QUEUES else []
            producer.publish({"left": "behind"}, routing_key=name, declare=declare)
    assert all(depth(name) >= 1 for name in leftovers)
    harness.empty_broker()
    assert {name: depth(name) for name in [*QUEUES, *leftovers]} == dict.fromkeys([*QUEUES, *leftovers], 0)
