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


def events_of(queue: str, tasks: int) -> tuple[list[str], int]:
    """Send ``tasks`` pings to the worker; the worker's task events that reached ``celeryev``, and in
    how many messages."""
    seen: list[str] = []
    messages = 0
    with app.connection_for_write() as conn:
        events = Queue(f"{queue}-events", Exchange("celeryev", type="topic"), routing_key="task.#", auto_delete=True)
        events(conn.default_channel).declare()
        for _ in range(tasks):
            app.send_task("celery.ping", queue=queue)

        def take(body: Any, message: Any) -> None:  # the worker flushes its buffered events as one task.multi list
            nonlocal messages
            kinds = [event["type"] for event in (body if isinstance(body, list) else [body])]
            kinds = [kind for kind in kinds if kind != "task-sent"]  # this process's own, one per send_task
            messages += bool(kinds)
            seen.extend(kinds)

        with conn.Consumer(events, callbacks=[take], accept=["json"]):
            deadline = 50
            while seen.count("task-succeeded") < tasks and deadline:
                try:
                    conn.drain_events(timeout=0.2)
                except TimeoutError:
                    deadline -= 1
    return seen, messages


def test_task_events_are_sent_unconfirmed_and_arrive(worker: tuple[Any, str]) -> None:
    controller, queue = worker
    dispatcher = controller.consumer.event_dispatcher
    assert dispatcher.enabled and "task" in (dispatcher.groups or {"task"})
    assert dispatcher.connection.connection.confirm_publish is False  # py-amqp's own flag: no wait per event
    seen, _ = events_of(queue, 1)
    assert {"task-received", "task-started", "task-succeeded"} <= set(seen)


def test_task_events_go_out_in_batches_not_one_message_each(worker: tuple[Any, str]) -> None:
    """Thirty quick tasks: all their 90 events arrive, in a few ``task.multi`` messages (one per
    quarter second or per 24 events), where the loop's next turn sent nearly one per event."""
    _, queue = worker
    seen, messages = events_of(queue, 30)
    assert [seen.count(kind) for kind in ("task-received", "task-started", "task-succeeded")] == [30, 30, 30]
    assert messages <= 90 / 6, f"{messages} messages for 90 events"


def test_the_tasks_own_messages_stay_confirmed(worker: tuple[Any, str]) -> None:
    """A retry is published by ``apply_async`` through the app's producer pool: confirmed."""
    with app.producer_or_acquire() as producer:
        assert producer.connection.connection.confirm_publish is True
