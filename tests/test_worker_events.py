"""A worker's task events go out unconfirmed and still reach Flower's exchange; its tasks'
messages (a retry) stay confirmed (``shop/pipeline/worker_events.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.tasks import ping  # noqa: F401 - registers celery.ping, the task run here
from celery.contrib.testing.worker import start_worker
from kombu import Exchange, Queue

from shop.celery import app

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def worker() -> Iterator[tuple[Any, str]]:
    """A worker in this process on a queue of its own, sending task events as the shop's do."""
    queue = f"worker-events-{uuid.uuid4().hex[:8]}"
    app.conf.task_queues = [*app.conf.task_queues, Queue(queue, auto_delete=True)]
    try:
        with start_worker(app, pool="solo", queues=[queue], task_events=True, perform_ping_check=False) as controller:
            yield controller, queue
    finally:
        app.conf.task_queues = app.conf.task_queues[:-1]


def test_task_events_are_sent_unconfirmed_and_arrive(worker: tuple[Any, str]) -> None:
    controller, queue = worker
    dispatcher = controller.consumer.event_dispatcher
    assert dispatcher.enabled and "task" in (dispatcher.groups or {"task"})
    assert dispatcher.connection.connection.confirm_publish is False  # py-amqp's own flag: no wait per event
    with app.connection_for_write() as conn:
        events = Queue(f"{queue}-events", Exchange("celeryev", type="topic"), routing_key="task.#", auto_delete=True)
        events(conn.default_channel).declare()
        app.send_task("celery.ping", queue=queue)
        seen: list[str] = []

        def take(body: Any, message: Any) -> None:  # the worker flushes its buffered events as one task.multi list
            seen.extend(event["type"] for event in (body if isinstance(body, list) else [body]))

        with conn.Consumer(events, callbacks=[take], accept=["json"]):
            deadline = 50
            while "task-succeeded" not in seen and deadline:
                try:
                    conn.drain_events(timeout=0.2)
                except TimeoutError:
                    deadline -= 1
    assert {"task-received", "task-started", "task-succeeded"} <= set(seen)


def test_the_tasks_own_messages_stay_confirmed(worker: tuple[Any, str]) -> None:
    """A retry is published by ``apply_async`` through the app's producer pool: confirmed."""
    with app.producer_or_acquire() as producer:
        assert producer.connection.connection.confirm_publish is True
