"""The relay's batched publisher confirms: Celery's own message, a nack that fails one row,
confirms awaited once per batch in bounded time, rows marked only after every confirm.

The relay runs in this process (``relay_once``) against the real database and broker; no worker
consumes, so published messages wait on their queues, where the tests read them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu import Connection, Exchange, Producer, Queue

from shop.pipeline import publisher, relay, task_messages
from shop.pipeline.events import subscribers
from shop.pipeline.models import OutboxEvent
from shop.pipeline.outbox import emit
from tests.test_relay_backoff import FreezableProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker(without_shared_pipeline: None, transactional_db: None, settings) -> Iterator[None]:
    from shop.celery import app

    settings.OUTBOX_BACKOFF_BASE = 0.3
    settings.OUTBOX_BACKOFF_MAX = 1.0
    app.loader.import_default_modules()
    publisher.drop_producer()
    app.control.purge()
    yield
    publisher.drop_producer()
    app.control.purge()


def emit_event(kind: str, order_id: str) -> OutboxEvent:
    with transaction.atomic():
        return emit(kind, order_id=order_id, payload={"amount": "1.00", "lines": [{"sku": "A-1", "quantity": 2}]})


def take(queue: str) -> list:
    """Every message waiting on the queue, consumed."""
    from shop.celery import app

    messages = []
    with app.connection_for_read() as conn:
        bound = Queue(queue, Exchange("pipeline", type="topic"), routing_key=queue, no_declare=True)(conn.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            messages.append(message)
    return messages


def described(message) -> dict:
    """What a worker reads of a message: everything but the broker's own bookkeeping."""
    properties = {k: v for k, v in message.properties.items() if k not in ("delivery_tag", "delivery_info", "body_encoding")}
    properties.pop("application_headers", None)
    return {
        "headers": message.headers,
        "properties": properties,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "body": json.loads(message.body),
        "exchange": message.delivery_info.get("exchange"),
        "routing_key": message.delivery_info.get("routing_key"),
    }


def test_the_message_is_the_one_apply_async_publishes(broker: None, settings) -> None:
    """The old relay published with ``apply_async``; the batched one must produce the same message."""
    from shop.celery import app

    row = emit_event("payment.authorized", "ORD-FORMAT")
    [claimed] = relay.claim_batch("test-relay", 10)
    [(task, queue, message_id, kwargs)] = task_messages.messages_for(claimed)
    with app.connection_for_write() as conn:  # the old way, as the relay published until now
        app.tasks[task].apply_async(
            kwargs=kwargs,
            task_id=message_id,
            queue=queue,
            headers={"request_id": claimed["request_id"] or None, "emitted_at": claimed["created_at"].timestamp()},
            producer=Producer(conn),
            confirm_timeout=settings.OUTBOX_CONFIRM_TIMEOUT,
        )
    [old] = take(queue)
    OutboxEvent.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now(), claimed_by="")
    assert relay.relay_once("test-relay") == 1
    [new] = take(queue)
    assert described(new) == described(old)
    assert new.properties["correlation_id"] == message_id == new.headers["id"]
    assert new.headers["task"] == task and "request_id" in new.headers
    assert new.headers["emitted_at"] == row.created_at.timestamp()  # the stage-latency histogram's start
    assert new.properties["delivery_mode"] == 2  # persistent
    assert (new.content_type, new.content_encoding) == ("application/json", "utf-8")


def test_the_arguments_flower_shows_name_the_event_and_never_the_customer(broker: None) -> None:
    """Flower shows a task's ``kwargsrepr`` header to every staff login: the event, its kind and its
    order, and no payload; a retry (``apply_async`` again) keeps the same summary."""
    from shop.celery import app

    with transaction.atomic():
        row = emit("order.placed", order_id="ORD-PRIVATE", payload={"email": "ada@example.com", "amount": "1.00"})
    assert relay.relay_once("test-relay") == 1
    messages = [message for queue in {s.queue for s in subscribers("order.placed")} for message in take(queue)]
    assert messages
    for message in messages:
        shown = message.headers["kwargsrepr"]
        assert shown == f"{{'event_id': '{row.event_id}', 'kind': 'order.placed', 'order_id': 'ORD-PRIVATE', 'payload': '…'}}"
        assert "ada@example.com" not in shown
        assert json.loads(message.body)[1]["payload"]["email"] == "ada@example.com"  # the task still gets it all
    task, queue = messages[0].headers["task"], messages[0].delivery_info["routing_key"]
    with app.connection_for_write() as conn:
        app.tasks[task].apply_async(kwargs=json.loads(messages[0].body)[1], queue=queue, producer=Producer(conn))
    [retried] = take(queue)
    assert retried.headers["kwargsrepr"] == messages[0].headers["kwargsrepr"]


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="TCP_CORK is Linux's")
def test_a_batch_is_written_corked_and_uncorked_before_its_confirms_are_awaited(broker: None, monkeypatch) -> None:
    """Corked, the broker reads the batch in large segments; left corked, every confirm would wait
    for the kernel's 200 ms flush."""
    seen: list[int] = []
    publish_row = task_messages.publish_row

    def recording(producer: Producer, row: dict, copies: int) -> int:
        seen.append(producer.channel.connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))
        return publish_row(producer, row, copies)

    def corked_now() -> int:
        return publisher._get_link().connection.connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)

    wait = publisher.ConfirmTracker.wait
    at_wait: list[int] = []
    monkeypatch.setattr(task_messages, "publish_row", recording)
    monkeypatch.setattr(
        publisher.ConfirmTracker, "wait", lambda self, timeout: at_wait.append(corked_now()) or wait(self, timeout)
    )
    for n in range(3):
        emit_event("order.placed", f"ORD-CORK-{n}")
    assert relay.relay_once("test-relay") == 3
    assert seen == [1, 1, 1] and at_wait == [0]
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def nacking_queue(conn: Connection, routing_key: str) -> Queue:
    """A queue that refuses every message (length 0, ``reject-publish``), bound beside the real one:
    RabbitMQ nacks a message that any of its queues refused."""
    queue = Queue(
        f"test-refuse-{routing_key}",
        Exchange("pipeline", type="topic", durable=True),
        routing_key=routing_key,
        auto_delete=True,
        queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
    )(conn.default_channel)
    queue.declare()
    return queue


@pytest.mark.rabbitmq
def test_a_nack_fails_only_the_row_of_the_refused_message(broker: None) -> None:
    from shop.celery import app

    good = [emit_event("payment.authorized", f"ORD-ACK{i}").pk for i in range(3)]
    placed = emit_event("order.placed", "ORD-NACK")  # four copies; the inventory one is refused
    more = [emit_event("payment.authorized", f"ORD-ACK{i}").pk for i in range(3, 6)]
    with app.connection_for_write() as conn:
        queue = nacking_queue(conn, "inventory")
        before = timezone.now()
        try:
            assert relay.relay_once("test-relay") == 6
        finally:
            queue.delete()
    assert OutboxEvent.objects.filter(pk__in=good + more, published_at__isnull=False).count() == 6
    placed.refresh_from_db()
    assert placed.published_at is None and placed.parked_at is None  # three of four copies: not published
    assert "nacked" in placed.last_error and placed.publish_attempts == 1
    # Backing off alone: at least the fixed half of the first backoff after the failure (not
    # "later than now", which a slow machine passes by before the assertion runs).
    assert placed.next_attempt_at >= before + timedelta(seconds=settings.OUTBOX_BACKOFF_BASE / 2)
    OutboxEvent.objects.filter(pk=placed.pk).update(next_attempt_at=timezone.now())
    assert relay.relay_once("test-relay") == 1  # nothing refuses it any more


class PartitionProxy(FreezableProxy):
    """Freezes only the connections open at the time (the relay's): a new connection, such as the
    relay's check that the broker is there, goes through."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.frozen_sockets: set[socket.socket] = set()
        super().__init__(upstream)

    def freeze_open(self) -> None:
        self.frozen_sockets = set(self.sockets)

    def thaw(self) -> None:
        self.frozen_sockets = set()

    def _pump(self, src: socket.socket, dst: socket.socket, from_broker: bool) -> None:
        try:
            while data := src.recv(65536):
                while from_broker and src in self.frozen_sockets:  # held back: it arrives late, or never
                    time.sleep(0.02)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()


@pytest.fixture
def proxy(broker: None, settings) -> Iterator[PartitionProxy]:
    from shop.celery import app

    if not app.conf.broker_url.startswith("amqp"):
        pytest.skip("the embedded broker has no confirms")
    upstream = Connection(app.conf.broker_url)
    proxy = PartitionProxy((upstream.hostname or "127.0.0.1", upstream.port or 5672))
    app.conf.broker_write_url = upstream.clone(hostname="127.0.0.1", port=proxy.port).as_uri(include_password=True)
    try:
        emit_event("order.placed", "ORD-WARM")
        assert relay.relay_once("test-relay") == 1  # the relay's connection is open, its queues declared
        yield proxy
    finally:
        proxy.close()
        app.conf.broker_write_url = None
        publisher.drop_producer()


@pytest.mark.rabbitmq
def test_a_missing_confirm_fails_its_rows_in_bounded_time_while_the_broker_is_up(proxy: PartitionProxy, settings) -> None:
    settings.OUTBOX_CONFIRM_TIMEOUT = 1.5
    rows = [emit_event("order.placed", f"ORD-LOST{i}").pk for i in range(5)]
    proxy.freeze_open()
    started = time.monotonic()
    assert relay.relay_once("test-relay") == 0
    assert time.monotonic() - started < 1.5 + 8  # one bounded wait for the batch, and the check that the broker is up
    proxy.thaw()
    for row in OutboxEvent.objects.filter(pk__in=rows):
        assert row.published_at is None
        assert "no publisher confirm" in row.last_error
        assert row.publish_attempts == 1 and row.next_attempt_at > timezone.now()  # counted: the broker is up
    OutboxEvent.objects.filter(pk__in=rows).update(next_attempt_at=timezone.now())
    assert relay.relay_once("test-relay") == 5  # a fresh connection, fresh tags


@pytest.mark.rabbitmq
def test_rows_are_marked_only_once_every_confirm_is_in(proxy: PartitionProxy, settings) -> None:
    settings.OUTBOX_CONFIRM_TIMEOUT = 20
    rows = [emit_event("order.placed", f"ORD-LATE{i}").pk for i in range(10)]
    proxy.freeze_open()  # the broker has the messages; its confirms wait in the proxy
    result: list[int] = []

    def relay_in_thread() -> None:
        try:
            result.append(relay.relay_once("test-relay"))
        finally:
            connection.close()  # the thread's own database connection

    worker = threading.Thread(target=relay_in_thread, daemon=True)
    worker.start()
    time.sleep(2.0)
    assert worker.is_alive()
    assert not OutboxEvent.objects.filter(pk__in=rows, published_at__isnull=False).exists()
    proxy.thaw()
    worker.join(20)
    assert result == [10]
    assert OutboxEvent.objects.filter(pk__in=rows, published_at__isnull=False).count() == 10


def test_two_relays_share_a_backlog_and_publish_each_event_once(broker: None, tmp_path) -> None:
    """They claim with SKIP LOCKED: every row is published by one of them, every message once."""
    from tests import harness

    rows = [OutboxEvent(kind="order.placed", order_id=f"ORD-PAR{i}", payload={"amount": "1.00"}) for i in range(300)]
    OutboxEvent.objects.bulk_create(rows)
    relays = [harness.relay(tmp_path, name=f"relay-{n}") for n in (1, 2)]
    try:
        harness.wait_until(
            lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), 120, what="the backlog to drain"
        )
    finally:
        for proc in relays:
            proc.stop()
    assert not OutboxEvent.objects.exclude(publish_attempts=1).exists()  # nobody took a row twice
    ids = [message.headers["id"] for message in take("payments")]
    assert len(ids) == len(set(ids)) == 300
