"""Payment corners: compensations that fail, approvals learnt late, compensations that overlap.

The gateway is the simulated one, driven through its fault switches; a call that is
"in flight" is a wrapper around the real call that lets the rest of the world move
first. The tasks run in process (``Task.apply``), with their real retry policy and
dead-letter parking, against the real database.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from django.db import connection

from orders import services as orders
from orders.models import Order
from orders.payments import services as payments
from orders.payments.models import GatewayTransaction, Payment
from orders.payments.tasks import authorize_payment, cancel_payment
from shop.pipeline import faults
from shop.pipeline.models import DeadLetter, FaultSetting, OutboxEvent
from shop.proof import audit
from shop.storefront.checkout import CheckoutRequest, place
from tests.fixtures import order_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]


@pytest.fixture
def switches(transactional_db: None) -> Iterator[None]:
    """In-process fault switches (this process is the only one calling the gateway)."""
    faults.clear_cache()
    yield
    FaultSetting.objects.all().delete()
    faults.clear_cache()


def new_order() -> Order:
    body = order_body(email=f"{uuid.uuid4().hex[:10]}@example.com")
    order, _ = place(CheckoutRequest(body["email"], body["name"], body["address"], body["items"], body["card"]))
    return order


def event() -> str:
    return str(uuid.uuid4())


def approved_ops(order_id: str) -> dict[str, int]:
    ops: dict[str, int] = {}
    for op in GatewayTransaction.objects.filter(reference=order_id, approved=True).values_list("operation", flat=True):
        ops[op] = ops.get(op, 0) + 1
    return ops


def authorise_message(order: Order) -> dict:
    return {"event_id": event(), "kind": "order.placed", "order_id": order.public_id, "payload": orders.order_snapshot(order)}


def authorise(message: dict, retries: int = 0):
    """The authorise task as a worker of the payments queue runs it, from attempt ``retries + 1``."""
    return authorize_payment.apply(kwargs=message, retries=retries, routing_key="payments")


def cancel_order_for(order_id: str, kind: str) -> None:
    """Apply the last ``kind`` event to the order, then run the payment's compensation for its cancellation."""
    emitted = OutboxEvent.objects.filter(order_id=order_id, kind=kind).latest("id")
    orders.order_apply_event(event_id=event(), kind=kind, order_id=order_id, payload=emitted.payload)
    assert Order.objects.get(public_id=order_id).status == "cancelled"
    cancelled = OutboxEvent.objects.filter(order_id=order_id, kind="order.cancelled").latest("id")
    payments.payment_cancel(event_id=str(cancelled.event_id), order_id=order_id, handler=cancel_payment.name)


def open_authorisations(order_id: str) -> list[str]:
    return [f.detail for f in audit.run().violations if f.order_id == order_id and f.check == "authorisation-left-open"]


def test_a_void_that_fails_after_a_late_approval_is_retried_then_parked(catalog, switches, monkeypatch):
    """Issue: the order is cancelled while the authorisation is in flight, the gateway approves,
    and the void then meets a 503. The failure must be retried and parked, never acked as done."""
    order = new_order()
    oid = order.public_id
    real_authorize = payments.gateway.authorize

    def approved_while_cancelled(**kw):
        payments.payment_cancel(event_id=event(), order_id=oid, handler=cancel_payment.name)
        response = real_authorize(**kw)
        faults.set_switch("gateway_failure_rate", "1")  # from now on the gateway answers 503
        return response

    monkeypatch.setattr(payments.gateway, "authorize", approved_while_cancelled)
    message = authorise_message(order)
    result = authorise(message)

    assert result.failed(), "a compensation that failed was acked as done"
    assert Payment.objects.get(order_id=oid).status == "voiding"
    letter = DeadLetter.objects.get(order_id=oid, task=authorize_payment.name, status="parked")
    assert letter.attempts == authorize_payment.max_retries + 1  # retried like any step first
    assert "void" in letter.error or "503" in letter.error

    # The outage ends and staff replay the letter: the void finishes, once.
    faults.set_switch("gateway_failure_rate", "0")
    monkeypatch.setattr(payments.gateway, "authorize", real_authorize)
    assert authorise(letter.kwargs).successful()
    assert Payment.objects.get(order_id=oid).status == "voided"
    assert approved_ops(oid) == {"authorize": 1, "void": 1}


def test_an_approval_learnt_after_the_payment_was_abandoned_is_voided(catalog, switches, monkeypatch):
    """Issue: two copies of one authorise message. Copy B gives up after 503s, the order is
    cancelled and its compensation finds nothing to void, all while copy A's gateway call is
    in flight; A then learns of the approval. A must void it."""
    order = new_order()
    oid = order.public_id
    message = authorise_message(order)
    real_authorize = payments.gateway.authorize
    in_flight: list[bool] = []

    def copy_a_in_flight(**kw):
        if not in_flight:
            in_flight.append(True)
            faults.set_switch("gateway_failure_rate", "1")
            last = authorize_payment.max_retries
            assert authorise(message, retries=last).successful()  # copy B gives up
            faults.set_switch("gateway_failure_rate", "0")
            assert Payment.objects.get(order_id=oid).status == "failed"
            cancel_order_for(oid, "payment.failed")
            assert Payment.objects.get(order_id=oid).status == "voided"  # nothing to void, yet
        return real_authorize(**kw)

    monkeypatch.setattr(payments.gateway, "authorize", copy_a_in_flight)
    assert authorise(message).successful()  # copy A

    assert approved_ops(oid) == {"authorize": 1, "void": 1}
    payment = Payment.objects.get(order_id=oid)
    assert payment.status == "voided" and payment.authorization_id
    assert open_authorisations(oid) == []
    assert "payment.authorized" not in OutboxEvent.objects.filter(order_id=oid).values_list("kind", flat=True)


def test_an_approval_learnt_while_a_void_found_nothing_is_voided(catalog, switches, monkeypatch):
    """The same race, one step later: the compensation has looked the authorisation up (none)
    and is about to record "voided" when the in-flight copy A records the approval."""
    order = new_order()
    oid = order.public_id
    message = authorise_message(order)
    real_authorize, real_find = payments.gateway.authorize, payments.gateway.find_authorization
    a_in_flight, a_may_answer = threading.Event(), threading.Event()

    def slow_for_copy_a(**kw):
        if threading.current_thread() is copy_a:
            a_in_flight.set()
            assert a_may_answer.wait(60)
        return real_authorize(**kw)

    def copy_a_run() -> None:
        try:
            authorise(message)
        finally:
            connection.close()

    def found_nothing_then_approval_lands(**kw):
        found = real_find(**kw)
        a_may_answer.set()
        copy_a.join(60)  # copy A has recorded what it learnt
        return found

    monkeypatch.setattr(payments.gateway, "authorize", slow_for_copy_a)
    copy_a = threading.Thread(target=copy_a_run)
    copy_a.start()
    assert a_in_flight.wait(60)
    faults.set_switch("gateway_failure_rate", "1")
    authorise(message, retries=authorize_payment.max_retries)  # copy B gives up
    faults.set_switch("gateway_failure_rate", "0")
    monkeypatch.setattr(payments.gateway, "find_authorization", found_nothing_then_approval_lands)
    cancel_order_for(oid, "payment.failed")
    copy_a.join(60)

    assert not copy_a.is_alive()
    assert approved_ops(oid) == {"authorize": 1, "void": 1}
    assert Payment.objects.get(order_id=oid).status == "voided"
    assert open_authorisations(oid) == []


def test_a_compensation_that_finds_the_void_done_refunds_nothing(catalog):
    """Issue: a second compensation (a redelivered copy whose locked check passed before the
    first one finished) read "voided" without a lock and refunded money never captured."""
    order = new_order()
    oid = order.public_id
    message = authorise_message(order)
    payments.payment_authorize(event_id=message["event_id"], order_id=oid, payload=message["payload"], handler="auth")
    cancelled = event()
    payments.payment_cancel(event_id=cancelled, order_id=oid, handler=cancel_payment.name)
    assert Payment.objects.get(order_id=oid).status == "voided"

    payments._compensate(oid, cancelled, cancel_payment.name)  # the second copy, after the first finished

    assert approved_ops(oid) == {"authorize": 1, "void": 1}
    assert Payment.objects.get(order_id=oid).status == "voided"


def test_a_compensation_after_a_refund_refunds_once(catalog):
    """Captured, then cancelled: one refund, whatever copy of the compensation runs again."""
    order = new_order()
    oid = order.public_id
    message = authorise_message(order)
    payments.payment_authorize(event_id=message["event_id"], order_id=oid, payload=message["payload"], handler="auth")
    payments.payment_capture(event_id=event(), order_id=oid, payload=message["payload"], handler="capture")
    cancelled = event()
    payments.payment_cancel(event_id=cancelled, order_id=oid, handler=cancel_payment.name)
    payments._compensate(oid, cancelled, cancel_payment.name)
    payments.payment_cancel(event_id=event(), order_id=oid, handler=cancel_payment.name)

    assert approved_ops(oid) == {"authorize": 1, "capture": 1, "refund": 1}
    assert Payment.objects.get(order_id=oid).status == "refunded"


def test_a_message_that_failed_after_delayed_retries_is_parked_under_its_queue(catalog, switches):
    """On quorum queues a retried message comes back through Celery's delayed-delivery
    exchange, with a routing key longer than a queue name: parking it must still work,
    under the queue the pipeline map gives the task."""
    order = new_order()
    faults.set_switch("gateway_failure_rate", "1")
    delayed_key = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.0.1.0.1.payments"
    message = authorise_message(order)
    result = authorize_payment.apply(kwargs=message, retries=authorize_payment.max_retries, routing_key=delayed_key)
    assert result.successful()  # the last attempt gives up on the authorisation: the order will be cancelled
    assert OutboxEvent.objects.filter(order_id=order.public_id, kind="payment.failed").exists()

    bad = {"event_id": event(), "kind": "order.placed", "order_id": order.public_id, "payload": {"lines": "not a list"}}
    assert authorize_payment.apply(kwargs=bad, retries=authorize_payment.max_retries, routing_key=delayed_key).failed()
    letter = DeadLetter.objects.get(order_id=order.public_id, task=authorize_payment.name)
    assert letter.queue == "payments"


def test_a_database_outage_on_the_last_attempt_is_retried_not_parked(catalog, switches, monkeypatch):
    """Found by the chaos run: the timeout card used up its retries on gateway timeouts, and the
    database restarted just as the last attempt gave up. What failed then was our own store, not
    the step: the message must be retried once the database is back, not parked for staff."""
    from django.db import OperationalError

    faults.set_switch("gateway_timeout_rate", "1")
    order = new_order()
    real_abandon = payments.payment_abandon
    outages = iter([OperationalError("the database system is starting up")])

    def abandon_while_the_database_restarts(**kw):
        for error in outages:
            raise error
        return real_abandon(**kw)

    monkeypatch.setattr(payments, "payment_abandon", abandon_while_the_database_restarts)
    result = authorise(authorise_message(order), retries=authorize_payment.max_retries)

    assert result.successful(), result.result
    assert not DeadLetter.objects.filter(order_id=order.public_id).exists()
    assert Payment.objects.get(order_id=order.public_id).status == "failed"
    assert OutboxEvent.objects.filter(order_id=order.public_id, kind="payment.failed").count() == 1


def test_the_retries_of_a_step_outlast_a_one_minute_gateway_outage(catalog, switches, monkeypatch):
    """Found by the bench's outage scenario: with Celery's full jitter every wait may be zero,
    and 13% of the authorisations caught by a 60 s outage ran out of retries inside it, so
    their orders were cancelled. Each wait is now at least half its step: with the default
    budget (8 retries, steps capped at 60 s) a step keeps trying for more than 91 s."""
    from shop.pipeline.task import PipelineTask

    monkeypatch.setattr(authorize_payment, "max_retries", 8)
    monkeypatch.setattr(authorize_payment, "retry_backoff_max", 60)
    waits: list[float] = []
    real_retry = PipelineTask.retry

    def recorded(self, *args, countdown=None, **kwargs):
        waits.append(countdown)
        return real_retry(self, *args, countdown=countdown, **kwargs)

    monkeypatch.setattr(PipelineTask, "retry", recorded)
    faults.set_switch("gateway_failure_rate", "1")
    for _ in range(3):
        waits.clear()
        order = new_order()
        assert authorize_payment.apply(kwargs=authorise_message(order)).successful()
        assert len(waits) == 8, waits  # then the last attempt gives up: the order is cancelled
        steps = [min(60, 2**n) for n in range(8)]
        assert all(wait >= step / 2 for wait, step in zip(waits, steps, strict=False)), waits
        assert sum(waits) >= 91, waits
