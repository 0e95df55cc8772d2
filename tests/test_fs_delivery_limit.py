"""The embedded broker's delivery limit and dead-letter queue, as RabbitMQ's quorum queues have them.

Run on the embedded default: ``env -u DATABASE_URL -u CELERY_BROKER_URL pytest tests/test_fs_delivery_limit.py``.
The transport tests use a broker folder of their own; the pipeline tests run a real worker and
relay on the test run's broker and database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from kombu import Connection

from shop.local.fs_transport import transport_options
from shop.pipeline.models import DeadLetter
from shop.pipeline.queues import DEAD_LETTER_QUEUE, DELIVERY_LIMIT
from tests import harness

LIMIT = 3


def broker(tmp_path: Path) -> Connection:
    return Connection("fsatomic://", transport_options=transport_options(tmp_path, delivery_limit=LIMIT, dead_letter_queue="dlq"))


@pytest.mark.embedded
def test_a_message_returned_past_the_limit_goes_to_the_dead_letter_queue(tmp_path: Path) -> None:
    with broker(tmp_path) as conn:
        work = conn.SimpleQueue("work")
        work.put({"n": 1})
        for delivery in range(1, LIMIT + 2):
            message = work.get(timeout=2)
            assert message.headers.get("x-delivery-count", 0) == delivery - 1
            message.requeue()  # as a worker whose child crashed on it does
        with pytest.raises(work.Empty):
            work.get(timeout=0.5)
        dead = conn.SimpleQueue("dlq").get(timeout=2)
        assert dead.payload == {"n": 1}
        assert dead.headers["x-delivery-count"] == LIMIT + 1
        assert dead.headers["x-death"][0]["reason"] == "delivery_limit"
        assert dead.headers["x-death"][0]["queue"] == "work"
        dead.ack()


@pytest.mark.embedded
def test_a_message_rejected_without_requeue_is_kept_in_the_dead_letter_queue(tmp_path: Path) -> None:
    with broker(tmp_path) as conn:
        work = conn.SimpleQueue("work")
        work.put({"n": 2})
        work.get(timeout=2).reject()  # requeue=False: a task that failed
        dead = conn.SimpleQueue("dlq").get(timeout=2)
        assert dead.payload == {"n": 2}
        assert dead.headers["x-death"][0]["reason"] == "rejected"
        dead.requeue()  # the dead-letter queue itself has no limit and keeps what is not acked
        for _ in range(LIMIT + 2):
            conn.SimpleQueue("dlq").get(timeout=2).requeue()
        conn.SimpleQueue("dlq").get(timeout=2).ack()
    assert not any((tmp_path / "queue").iterdir())
    assert not any((tmp_path / "claimed").rglob("*.msg"))


def test_the_project_broker_has_the_rabbitmq_limit() -> None:
    from django.conf import settings

    from shop.pipeline.queues import is_rabbitmq

    if is_rabbitmq(settings.CELERY_BROKER_URL):
        pytest.skip("the embedded broker's settings")
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["delivery_limit"] == DELIVERY_LIMIT
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["dead_letter_queue"] == DEAD_LETTER_QUEUE


@pytest.fixture
def payments(catalog, without_shared_pipeline, tmp_path: Path) -> Iterator[dict[str, harness.Proc]]:
    """A payments worker (one child) and a relay, on this run's broker and database."""
    from shop.celery import app

    app.control.purge()
    procs = {
        "worker": harness.worker(tmp_path, name="payments", queues="payments", concurrency=1, beat=False),
        "relay": harness.relay(tmp_path),
    }
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()
        app.control.purge()


def send_payment_step(order_id: str, payload: dict | None = None) -> str:
    from shop.celery import app

    event_id = str(uuid.uuid4())
    app.send_task(
        "orders.payments.tasks.authorize_payment",
        kwargs={"event_id": event_id, "kind": "order.placed", "order_id": order_id, "payload": payload or {}},
        task_id=f"{event_id}:orders.payments.tasks.authorize_payment",
        queue="payments",
    )
    return event_id


def logs(procs: dict[str, harness.Proc]) -> str:
    return "\n".join(f"===== {name}\n{proc.log()[-5000:]}" for name, proc in procs.items())


def wait_letter(procs: dict[str, harness.Proc], event_id: str, timeout: float) -> DeadLetter:
    try:
        return harness.wait_until(
            lambda: DeadLetter.objects.filter(message_id=event_id).first(), timeout, interval=0.5, what="the dead letter"
        )
    except AssertionError:
        print(logs(procs))
        raise


@pytest.mark.embedded
@pytest.mark.pipeline
def test_a_handler_that_always_crashes_is_parked_after_the_delivery_limit(payments, fault) -> None:
    """Every delivery kills the worker's child (os._exit): the broker counts the returns and,
    past the limit, dead-letters the message; the relay parks it; the worker lives on."""
    from django.conf import settings

    from shop.pipeline.queues import is_rabbitmq

    if is_rabbitmq(settings.CELERY_BROKER_URL):
        pytest.skip("the embedded broker's own count; RabbitMQ's delivery limit is tested in tests/test_faults.py")
    fault("poison_order", "POISON-FS")
    event_id = send_payment_step("POISON-FS")
    letter = wait_letter(payments, event_id, timeout=240)
    assert "dead-lettered by the broker: delivery_limit" in letter.error
    assert letter.attempts == DELIVERY_LIMIT + 1
    assert letter.status == DeadLetter.Status.PARKED
    assert payments["worker"].log().count("poison order POISON-FS crashes") == DELIVERY_LIMIT + 1
    assert payments["worker"].alive()


REFUSE = """
CREATE FUNCTION test_refuse_dead_letters() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'dead letters refused (test)'; END $$;
CREATE TRIGGER test_refuse_dead_letters BEFORE INSERT ON shop_deadletter
    FOR EACH ROW EXECUTE FUNCTION test_refuse_dead_letters();
"""
ALLOW = """
DROP TRIGGER IF EXISTS test_refuse_dead_letters ON shop_deadletter;
DROP FUNCTION IF EXISTS test_refuse_dead_letters();
"""


@pytest.mark.embedded
@pytest.mark.pipeline
def test_a_failed_task_whose_parking_fails_keeps_its_message(payments, tmp_path: Path) -> None:
    """The task fails for good, and the database refuses its dead letter: the broker must keep
    the message (it used to delete it), and the relay parks it once the database takes it."""
    with connection.cursor() as cur:
        cur.execute(REFUSE)
    try:
        event_id = send_payment_step("NO-SUCH-ORDER", {"garbage": [1, 2]})  # malformed: fails at once
        harness.wait_until(lambda: "could not park dead letter" in payments["worker"].log(), 60, what="the task's park to fail")
        harness.wait_until(
            lambda: "could not park a dead-lettered message yet" in payments["relay"].log(), 60, what="the relay's park to fail"
        )
        assert not DeadLetter.objects.exists()
    finally:
        with connection.cursor() as cur:
            cur.execute(ALLOW)
    letter = wait_letter(payments, event_id, timeout=60)
    assert "dead-lettered by the broker: rejected" in letter.error
    assert letter.kwargs["payload"] == {"garbage": [1, 2]}
    assert letter.status == DeadLetter.Status.PARKED
