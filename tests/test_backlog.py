"""The backlog figures (shop/pipeline/backlog.py): the broker's own counts on RabbitMQ and on the
embedded broker, and the per-handler and outbox backlogs read from hand-made rows."""

from __future__ import annotations

import socket
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from kombu import Connection, Consumer, Exchange, Queue

from shop.local.fs_transport import transport_options
from shop.pipeline import backlog
from shop.pipeline.events import ORDER_STEP, PIPELINE, QUEUES
from shop.pipeline.models import DeadLetter, OutboxEvent, ProcessedMessage
from shop.pipeline.queues import DEAD_LETTER_QUEUE, celery_queues, declare_dead_letters

AUTHORIZE = "orders.payments.tasks.authorize_payment"


def test_probed_queues_are_the_pipeline_queues_and_the_dead_letter_queue() -> None:
    assert (*QUEUES, DEAD_LETTER_QUEUE) == backlog.PROBED_QUEUES


def test_the_order_step_records_under_the_handler_name_the_backlog_looks_for() -> None:
    from orders.services import HANDLER

    assert backlog.handler_for(ORDER_STEP) == HANDLER
    assert backlog.handler_for(AUTHORIZE) == AUTHORIZE


# ---- the broker's counts ---------------------------------------------------------------


@pytest.fixture
def rabbit_queues() -> Connection:
    """The pipeline's quorum queues and the dead-letter queue declared in this run's vhost, empty."""
    with Connection(settings.CELERY_BROKER_URL, transport_options={"confirm_publish": True}) as conn:
        for queue in celery_queues(rabbitmq=True):
            queue(conn.default_channel).declare()
        declare_dead_letters(conn)
        for name in backlog.PROBED_QUEUES:
            conn.default_channel.queue_purge(name)
        yield conn
        for name in backlog.PROBED_QUEUES:
            conn.default_channel.queue_purge(name)


@pytest.mark.rabbitmq
def test_rabbitmq_depths_count_ready_messages_and_consumers(rabbit_queues: Connection) -> None:
    producer = rabbit_queues.Producer()
    for n in range(5):
        producer.publish({"n": n}, exchange="pipeline", routing_key="fraud", serializer="json")
    with backlog.BrokerProbe(settings.CELERY_BROKER_URL) as probe:
        depths = probe.depths()
        assert set(depths) == set(backlog.PROBED_QUEUES)
        assert depths["fraud"] == {"depth": 5, "consumers": 0, "source": "rabbitmq"}
        assert depths["payments"]["depth"] == depths[DEAD_LETTER_QUEUE]["depth"] == 0
        with Connection(settings.CELERY_BROKER_URL) as other:
            queue = Queue("fraud", Exchange("pipeline", type="topic"), routing_key="fraud", no_declare=True)
            taken: list[object] = []
            with Consumer(other.channel(), [queue], callbacks=[lambda body, msg: taken.append(msg)], prefetch_count=1):
                other.drain_events(timeout=2)  # one message taken, unacked: no longer ready
                again = probe.depths()
        assert len(taken) == 1
        assert again["fraud"]["consumers"] == 1
        assert again["fraud"]["depth"] == 4


@pytest.mark.rabbitmq
def test_rabbitmq_probe_keeps_one_connection_and_reconnects_after_it_broke(rabbit_queues: Connection) -> None:
    probe = backlog.BrokerProbe(settings.CELERY_BROKER_URL)
    probe.depths()
    first = probe._conn
    probe.depths()
    assert probe._conn is first, "one connection across calls"
    first.connection.sock.shutdown(socket.SHUT_RDWR)  # the broker connection breaks under it
    assert probe.depths()["orders"]["depth"] == 0
    assert probe._conn is not first
    probe.close()
    probe.close()


@pytest.mark.rabbitmq
def test_rabbitmq_missing_queue_is_reported_and_the_others_still_counted(rabbit_queues: Connection) -> None:
    with backlog.BrokerProbe(settings.CELERY_BROKER_URL) as probe:
        depths = probe.depths(("no-such-queue-" + uuid.uuid4().hex, "orders"))
    assert [d.get("missing") for d in depths.values()] == [True, None]
    assert depths[next(iter(depths))]["depth"] is None


def test_embedded_broker_depths_count_the_ready_message_files(tmp_path: Path) -> None:
    opts = transport_options(tmp_path)
    with Connection("fsatomic://", transport_options=opts) as conn:
        orders = conn.SimpleQueue("orders")
        for n in range(4):
            orders.put({"n": n})
        conn.SimpleQueue(DEAD_LETTER_QUEUE).put({"dead": True})
        probe = backlog.BrokerProbe("fsatomic://", transport_options=opts)
        depths = probe.depths()
        assert depths["orders"] == {"depth": 4, "consumers": None, "source": "filesystem"}
        assert depths[DEAD_LETTER_QUEUE]["depth"] == 1
        assert depths["payments"]["depth"] == 0
        taken = orders.get(timeout=1)  # claimed, unacked: not ready
        assert probe.depths()["orders"]["depth"] == 3
        taken.ack()
        orders.close()


# ---- the handlers' backlog ---------------------------------------------------------------


def event(kind: str, *, published: bool = True, age_s: float = 1.0, **fields: object) -> OutboxEvent:
    row = OutboxEvent.objects.create(kind=kind, order_id="o-" + uuid.uuid4().hex[:8], **fields)
    at = timezone.now() - timedelta(seconds=age_s)
    OutboxEvent.objects.filter(pk=row.pk).update(created_at=at, published_at=at if published else None)
    row.refresh_from_db()
    return row


def counts() -> dict[tuple[str, str], int]:
    return {(r["event"], r["task"]): r["count"] for r in backlog.subscription_backlog()}


@pytest.mark.django_db
def test_a_published_event_waits_for_each_subscriber_until_its_handler_processed_it() -> None:
    placed = event("order.placed", age_s=7.0)
    event("order.placed", published=False)  # the relay's, not a handler's
    found = counts()
    assert len(found) == len(PIPELINE)
    placed_subs = [(s.event, s.task) for s in PIPELINE if s.event == "order.placed"]
    assert [found[key] for key in placed_subs] == [1, 1, 1, 1]
    assert sum(found.values()) == 4
    ProcessedMessage.objects.create(message_id=placed.event_id, handler=AUTHORIZE)
    ProcessedMessage.objects.create(message_id=uuid.uuid4(), handler="inventory.tasks.reserve_stock")  # another event
    found = counts()
    assert found[("order.placed", AUTHORIZE)] == 0
    assert found[("order.placed", "inventory.tasks.reserve_stock")] == 1
    row = next(r for r in backlog.subscription_backlog() if r["task"] == "orders.fraud.tasks.screen_order")
    assert row["queue"] == "fraud"
    assert 6.5 < row["oldest_age_s"] < 30
    by_queue = backlog.backlog_by_queue(backlog.subscription_backlog())
    assert by_queue["payments"] == {"count": 0, "oldest_age_s": None}
    assert by_queue["fraud"]["count"] == 1


@pytest.mark.django_db
def test_the_order_step_counts_until_the_order_handler_recorded_the_event() -> None:
    from orders.services import HANDLER

    authorized = event("payment.authorized")
    assert counts()[("payment.authorized", ORDER_STEP)] == 1
    ProcessedMessage.objects.create(message_id=authorized.event_id, handler=ORDER_STEP)  # not the name it records
    assert counts()[("payment.authorized", ORDER_STEP)] == 1
    ProcessedMessage.objects.create(message_id=authorized.event_id, handler=HANDLER)
    assert counts()[("payment.authorized", ORDER_STEP)] == 0


@pytest.mark.django_db
def test_parked_copies_replays_and_events_older_than_the_window_do_not_count() -> None:
    parked = event("order.ready")
    DeadLetter.objects.create(task="orders.payments.tasks.capture_payment", message_id=str(parked.event_id), error="x")
    event("order.ready", target_task="orders.payments.tasks.capture_payment")
    event("order.ready", age_s=120.0)
    assert counts()[("order.ready", "orders.payments.tasks.capture_payment")] == 1
    assert sum(r["count"] for r in backlog.subscription_backlog(window_s=60.0)) == 0
    DeadLetter.objects.update(status=DeadLetter.Status.REPLAYED)  # waiting again, for the replayed copy
    assert counts()[("order.ready", "orders.payments.tasks.capture_payment")] == 2


@pytest.mark.django_db
def test_tracker_reads_only_since_the_oldest_open_event_and_still_sees_new_ones() -> None:
    old = event("order.ready", age_s=100.0)
    tracker = backlog.BacklogTracker(window_s=600.0, margin_s=5.0)
    rows, outbox = tracker.sample()
    assert sum(r["count"] for r in rows) == 1
    assert tracker.since == old.created_at - timedelta(seconds=5)
    ProcessedMessage.objects.create(message_id=old.event_id, handler="orders.payments.tasks.capture_payment")
    tracker.sample()
    assert timezone.now() - tracker.since < timedelta(seconds=6), "nothing open: only the last seconds are read"
    event("order.placed", published=False)  # not published yet: holds the bound back
    rows, outbox = tracker.sample()
    assert outbox["waiting"] == 1
    OutboxEvent.objects.filter(published_at__isnull=True).update(published_at=timezone.now())
    rows, _ = tracker.sample()
    assert sum(r["count"] for r in rows) == 4


@pytest.mark.django_db
def test_outbox_backlog_counts_waiting_and_parked_rows() -> None:
    assert backlog.outbox_backlog() == {"waiting": 0, "oldest_created_at": None, "oldest_age_s": None, "parked": 0}
    oldest = event("order.placed", published=False, age_s=30.0)
    event("order.placed", published=False)
    event("order.placed")
    event("order.placed", published=False, parked_at=timezone.now())
    figures = backlog.outbox_backlog()
    assert figures["waiting"] == 2
    assert figures["parked"] == 1
    assert figures["oldest_created_at"] == oldest.created_at
    assert 29 < figures["oldest_age_s"] < 60
