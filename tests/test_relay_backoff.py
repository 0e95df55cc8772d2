"""The relay: a row that cannot be published backs off alone and is parked; confirms are awaited in bounded time.

The relay runs in this process (``relay_once``) against the real database and broker; no
worker consumes, so the published messages wait on their queues and are purged afterwards.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from django.db import transaction
from django.utils import timezone

from shop.pipeline import deadletters, publisher, relay
from shop.pipeline.deadletters import RELAY_STEP
from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.pipeline.outbox import emit
from tests import harness

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def quiet_broker(without_shared_pipeline: None, transactional_db: None, settings) -> Iterator[None]:
    """Fast backoff for the test; the queues purged before and after; a fresh relay connection."""
    from shop.celery import app

    settings.OUTBOX_MAX_ATTEMPTS = 4
    settings.OUTBOX_BACKOFF_BASE = 0.3
    settings.OUTBOX_BACKOFF_MAX = 1.0
    app.loader.import_default_modules()  # the tasks registered, as in the relay process
    publisher.drop_producer()
    app.control.purge()
    yield
    publisher.drop_producer()
    app.control.purge()


def emit_event(kind: str, order_id: str, **extra) -> OutboxEvent:
    with transaction.atomic():
        return emit(kind, order_id=order_id, payload=extra.pop("payload", {"amount": "1.00"}), **extra)


def bad_replay(order_id: str) -> OutboxEvent:
    """A staff replay naming a task this release does not have: its publish fails every time."""
    kwargs = {"event_id": str(uuid.uuid4()), "kind": "order.placed", "order_id": order_id, "payload": {}}
    return emit_event("message.replayed", order_id, payload={"kwargs": kwargs}, target_task="orders.tasks.renamed_away")


def test_a_row_that_keeps_failing_never_blocks_the_rows_behind_it(quiet_broker: None) -> None:
    bad = bad_replay("ORD-BAD")
    good = [emit_event("payment.authorized", f"ORD-GOOD{i}").pk for i in range(3)]

    def pass_until(predicate):
        def step():
            relay.relay_once("test-relay", limit=10)
            return predicate()

        return step

    published = pass_until(lambda: OutboxEvent.objects.filter(pk__in=good, published_at__isnull=False).count() == 3)
    harness.wait_until(published, 30, interval=0.05, what="the good rows behind the bad one to publish")
    bad.refresh_from_db()
    assert bad.published_at is None
    assert "renamed_away" in bad.last_error
    if bad.parked_at is None:  # still backing off: not due again at once
        assert bad.next_attempt_at > timezone.now() - timezone.timedelta(seconds=1)

    later = emit_event("payment.authorized", "ORD-LATER")  # new events keep flowing while it backs off
    harness.wait_until(pass_until(lambda: OutboxEvent.objects.get(pk=later.pk).published_at), 30, what="a later row to publish")

    harness.wait_until(pass_until(lambda: OutboxEvent.objects.get(pk=bad.pk).parked_at), 60, what="the bad row to be parked")
    bad.refresh_from_db()
    assert bad.publish_attempts == 4 and bad.published_at is None
    letter = DeadLetter.objects.get(task=RELAY_STEP, status=DeadLetter.Status.PARKED)
    assert letter.order_id == "ORD-BAD" and letter.kwargs["outbox_id"] == bad.pk
    assert "renamed_away" in letter.error
    assert OutboxEvent.objects.filter(order_id="ORD-BAD", kind="order.flagged").exists()  # on the timeline, for staff

    claimed = relay.claim_batch("test-relay", 10)  # parked: the relay leaves it alone
    assert bad.pk not in [row["id"] for row in claimed]

    assert deadletters.replay(letter.pk)  # staff retry: the relay takes the row again
    bad.refresh_from_db()
    assert bad.parked_at is None and bad.publish_attempts == 0
    relay.relay_once("test-relay", limit=10)
    bad.refresh_from_db()
    assert bad.publish_attempts == 1 and bad.parked_at is None and bad.published_at is None


def test_a_broker_that_is_away_blames_no_row(quiet_broker: None, settings) -> None:
    """Publishing to a broker nobody listens on: rows are handed back uncounted, never parked."""
    from shop.celery import app

    if not app.conf.broker_url.startswith("amqp"):
        pytest.skip("the embedded broker is a folder: it cannot be away")
    rows = [emit_event("payment.authorized", f"ORD-AWAY{i}").pk for i in range(3)]
    app.conf.broker_write_url = "amqp://guest:guest@127.0.0.1:1//"
    try:
        for _ in range(settings.OUTBOX_MAX_ATTEMPTS + 2):
            OutboxEvent.objects.filter(pk__in=rows).update(next_attempt_at=timezone.now())
            assert relay.relay_once("test-relay", limit=10) == 0
    finally:
        app.conf.broker_write_url = None
        publisher.drop_producer()
    assert not OutboxEvent.objects.filter(pk__in=rows, parked_at__isnull=False).exists()
    assert set(OutboxEvent.objects.filter(pk__in=rows).values_list("publish_attempts", flat=True)) == {0}
    OutboxEvent.objects.filter(pk__in=rows).update(next_attempt_at=timezone.now())
    harness.wait_until(lambda: relay.relay_once("test-relay", limit=10) == 3 or None, 30, what="the rows to publish")


class FreezableProxy:
    """A TCP proxy to RabbitMQ that can stop passing the broker's bytes to the client: the
    publish reaches the broker, its confirm never comes back (a network partition, one way)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.frozen = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_broker: bool) -> None:
        try:
            while data := src.recv(65536):
                while from_broker and self.frozen.is_set():  # held back, not lost: it arrives late
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        self.frozen.clear()
        self.server.close()
        for s in self.sockets:
            s.close()


@pytest.mark.rabbitmq
def test_a_confirm_that_never_comes_is_awaited_in_bounded_time(quiet_broker: None, settings) -> None:
    from kombu import Connection

    from shop.celery import app

    settings.OUTBOX_CONFIRM_TIMEOUT = 2.0
    broker = Connection(app.conf.broker_url)
    proxy = FreezableProxy((broker.hostname or "127.0.0.1", broker.port or 5672))
    app.conf.broker_write_url = broker.clone(hostname="127.0.0.1", port=proxy.port).as_uri(include_password=True)
    try:
        first = emit_event("payment.authorized", "ORD-CONFIRM1")
        harness.wait_until(lambda: relay.relay_once("test-relay") or None, 30, what="a publish through the proxy")
        proxy.frozen.set()  # the relay's connection is open and in confirm mode; confirms stop coming
        row = emit_event("payment.authorized", "ORD-CONFIRM2")
        worker = threading.Thread(target=relay.relay_once, args=("test-relay",), daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "the relay is still waiting for a confirm"
        row.refresh_from_db()
        assert row.published_at is None  # not confirmed: not marked
        assert row.last_error
        proxy.frozen.clear()
        OutboxEvent.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())

        def published() -> object:
            relay.relay_once("test-relay")
            return OutboxEvent.objects.get(pk=row.pk).published_at

        harness.wait_until(published, 60, interval=0.3, what="the row to publish once confirms come back")
        first.refresh_from_db()
        assert first.published_at is not None
    finally:
        proxy.close()
        app.conf.broker_write_url = None
        publisher.drop_producer()
