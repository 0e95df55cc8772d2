"""Pausing and resuming a stage's consumers with Celery's remote control, on real workers (one
per stage queue, as the demo runs them): while notifications is paused its messages wait on the
queue and the other stages go on; after the resume they drain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifications.models import MailboxMessage
from shop.pipeline import consumers
from shop.pipeline.backlog import queue_depths
from shop.pipeline.models import QueuePause
from tests import harness
from tests.fixtures import Pipeline

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

OTHERS = "orders,payments,fraud,inventory,shipping"


@pytest.fixture
def stage_workers(without_shared_pipeline: None, catalog: dict[str, int], tmp_path) -> Iterator[Pipeline]:
    """A notifications worker of its own beside one for the other queues, and a relay."""
    procs = Pipeline(tmp_path)
    procs.procs["notifications"] = harness.worker(tmp_path, name="notifications", queues="notifications", beat=False)
    procs.procs["others"] = harness.worker(tmp_path, name="others", queues=OTHERS)
    procs.procs["relay"] = harness.relay(tmp_path)
    procs.stopped = False
    try:  # stopped even when they never answer: workers left running would take later tests' messages
        harness.wait_until(
            lambda: consumers.queue_state("notifications", timeout=1).consuming
            and consumers.queue_state("shipping", timeout=1).consuming,
            120,
            what="both workers to answer",
        )
        yield procs
    finally:
        procs.stop()
        from shop.celery import app

        app.control.purge()  # what a failed test left waiting (a paused queue's mail): later tests count the queues


def waiting(queue: str) -> int:
    return queue_depths()[queue]["depth"]


def test_paused_messages_wait_and_drain_after_resume(stage_workers, shop_api):
    [notifier] = consumers.queue_state("notifications", timeout=1).consuming
    assert notifier.startswith("notifications@")

    paused = consumers.pause_queue("notifications", staff="Grace Hopper", timeout=2)
    assert paused.answered == (notifier,) and paused.missing == ()
    state = harness.wait_until(
        lambda: (s := consumers.queue_state("notifications", timeout=1)).is_paused and s, 10, what="the pause"
    )
    assert state.paused == (notifier,) and state.consuming == ()
    [held] = QueuePause.objects.filter(queue="notifications", resumed_at__isnull=True)
    assert (held.paused_by, held.workers) == ("Grace Hopper", notifier)
    assert not consumers.queue_state("shipping", timeout=1).is_paused
    with pytest.raises(consumers.RemoteControlError, match="no worker consumes notifications"):
        consumers.pause_queue("notifications", staff="Grace Hopper", timeout=1)

    orders = [shop_api.place(sku="SKU-1")["id"] for _ in range(3)]
    assert set(stage_workers.wait_terminal(orders).values()) == {"delivered"}  # the other stages go on
    harness.wait_until(lambda: waiting("notifications") == 6, 30, what="6 emails waiting on the queue")
    assert MailboxMessage.objects.filter(order_id__in=orders).count() == 0

    resumed = consumers.resume_queue("notifications", staff="Grace Hopper", timeout=2)
    assert resumed.answered == (notifier,)
    held.refresh_from_db()
    assert held.resumed_by == "Grace Hopper" and held.resumed_at is not None
    harness.wait_until(lambda: MailboxMessage.objects.filter(order_id__in=orders).count() == 6, 60, what="the emails to drain")
    assert waiting("notifications") == 0
    assert consumers.queue_state("notifications", timeout=1).consuming == (notifier,)
    with pytest.raises(consumers.RemoteControlError, match="not paused"):
        consumers.resume_queue("notifications", staff="Grace Hopper", timeout=1)
    with pytest.raises(ValueError, match="not a queue"):
        consumers.pause_queue("nowhere", staff="Grace Hopper")
    stage_workers.wait_quiet()


@pytest.mark.rabbitmq
@pytest.mark.faults
def test_the_queues_state_is_read_after_a_broker_restart(stage_workers):
    """Found in CI: after a broker restart the app's pooled connections are dead, and the first
    broadcast failed with a reset. The broadcast is tried once more on fresh connections."""
    from shop.proof.chaos.outages import restart_broker

    assert consumers.queue_state("notifications", timeout=1).consuming
    restart_broker(down_seconds=1.0)
    state = harness.wait_until(
        lambda: (s := consumers.queue_state("notifications", timeout=2)).consuming and s, 90, what="the workers to reconnect"
    )
    assert state.consuming
