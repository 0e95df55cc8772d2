"""A retry asked for in under a second is delayed, not refused, on quorum queues.

kombu's native delayed delivery counts whole seconds and raises ``ValueError: countdown
must be a positive number`` for a countdown under one. Found in CI: the email task retries
a claim held by another delivery after ``retry_in + 0.5`` seconds, which is under one when
the claim is about to go stale; the retry itself failed and the message was parked as a
dead letter instead of being looked at again a moment later.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery import signals
from kombu import Exchange, Queue
from kombu.transport.native_delayed_delivery import declare_native_delayed_delivery_exchanges_and_queues

from shop.celery import app

PROBE = Queue("retry-delay-probe", Exchange("pipeline", type="topic"), routing_key="retry-delay-probe")


@pytest.mark.parametrize(("asked", "sent"), [(None, None), (0, None), (-2.5, None), (0.01, 1), (0.5, 1), (1.2, 2), (7, 7)])
def test_a_countdown_is_whole_seconds_and_never_sooner_than_asked(asked: float | None, sent: int | None) -> None:
    from shop.celery import whole_seconds

    assert whole_seconds(asked) == sent


@pytest.mark.rabbitmq
def test_a_retry_in_half_a_second_goes_through_the_one_second_delay_level() -> None:
    published: list[dict[str, Any]] = []

    def record(sender: Any = None, exchange: Any = None, routing_key: str = "", **kwargs: Any) -> None:
        published.append({"task": sender, "exchange": exchange, "routing_key": routing_key})

    with app.connection_for_write() as conn:
        declare_native_delayed_delivery_exchanges_and_queues(conn, "quorum")  # as a worker does at start
    signals.before_task_publish.connect(record, weak=False)
    try:
        # A task name no worker knows, on a routing key no queue is bound to: after its second
        # in the delay level the message has nowhere to go and is dropped, touching nothing.
        app.send_task("tests.retry_delay_probe", kwargs={}, countdown=0.5, queue=PROBE)
    finally:
        signals.before_task_publish.disconnect(record)

    assert len(published) == 1, published
    sent = published[0]
    assert getattr(sent["exchange"], "name", sent["exchange"]) == "celery_delayed_27", sent
    levels, probe, _ = sent["routing_key"].rpartition(".retry-delay-probe")
    assert probe, sent
    assert int(levels.replace(".", ""), 2) == 1, sent  # one second: the binary levels of the delay
