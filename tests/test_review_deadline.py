"""A fraud review has a deadline: past it the order is cancelled with its compensations.

The service tests drive the sweeper with an explicit clock; the pipeline test runs
real workers (with beat) under a short deadline and ends with the checker clean.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from inventory.models import StockItem
from notifications.models import MailboxMessage
from orders import services as orders
from orders.fraud import services as fraud
from orders.fraud.models import Decision, FraudCheck
from orders.models import Order
from orders.payments.models import GatewayTransaction
from shop.pipeline.models import OutboxEvent
from shop.proof import audit
from shop.storefront.checkout import CheckoutRequest, place
from tests import harness
from tests.fixtures import CARD_DECLINED, Pipeline, order_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]

REASON = "fraud review not completed in time"


def new_order(**kw) -> Order:
    body = order_body(**kw)
    order, _ = place(CheckoutRequest(body["email"], body["name"], body["address"], body["items"], body["card"]))
    return order


def in_review() -> tuple[Order, FraudCheck]:
    """An order screened into review (a disposable email scores 50: review, not reject)."""
    order = new_order(email=f"{uuid.uuid4().hex[:8]}@yopmail.com")
    fraud.fraud_screen(event_id=str(uuid.uuid4()), order_id=order.public_id, payload=orders.order_snapshot(order), handler="t")
    apply(order, "fraud.review")
    order.refresh_from_db()
    return order, FraudCheck.objects.get(order_id=order.public_id)


def apply(order: Order, kind: str, payload: dict | None = None) -> None:
    orders.order_apply_event(event_id=str(uuid.uuid4()), kind=kind, order_id=order.public_id, payload=payload or {})


def events(order: Order, kind: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(order_id=order.public_id, kind=kind))


def test_a_review_gets_a_deadline_from_the_setting(catalog, settings):
    order, check = in_review()
    assert order.status == "review"
    assert check.decision == Decision.REVIEW
    expected = check.created_at + timedelta(seconds=settings.FRAUD_REVIEW_DEADLINE_SECONDS)
    assert abs((check.review_deadline - expected).total_seconds()) < 2


def test_past_its_deadline_a_review_is_expired_once_and_the_order_cancelled(catalog):
    order, check = in_review()
    assert fraud.fraud_expire_reviews(now=check.review_deadline - timedelta(seconds=1)) == 0
    assert fraud.fraud_expire_reviews(now=check.review_deadline + timedelta(seconds=1)) == 1
    assert fraud.fraud_expire_reviews(now=check.review_deadline + timedelta(seconds=60)) == 0  # once
    (expired,) = events(order, "fraud.review_expired")
    assert expired.payload["reason"] == REASON
    assert FraudCheck.objects.get(pk=check.pk).decision == Decision.EXPIRED

    orders.order_apply_event(event_id=str(expired.event_id), kind=expired.kind, order_id=order.public_id, payload=expired.payload)
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", REASON)
    (cancelled,) = events(order, "order.cancelled")  # the compensations' trigger, with the why for the customer
    assert cancelled.payload["reason"] == REASON
    assert "in time" in cancelled.payload["detail"]
    assert REASON in cancelled.message


def test_a_staff_decision_after_the_deadline_does_not_resurrect_the_order(catalog):
    order, check = in_review()
    fraud.fraud_expire_reviews(now=check.review_deadline + timedelta(seconds=1))
    (expired,) = events(order, "fraud.review_expired")
    apply(order, "fraud.review_expired", expired.payload)

    assert fraud.fraud_decide(order_id=order.public_id, approve=True) is False
    assert not events(order, "fraud.cleared")
    apply(order, "fraud.cleared")  # even a clearance that got through is ignored by the order
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert order.fraud_cleared_at is None


def test_a_decision_past_the_deadline_before_the_sweep_expires_the_review(catalog):
    order, check = in_review()
    FraudCheck.objects.filter(pk=check.pk).update(review_deadline=timezone.now() - timedelta(seconds=1))

    assert fraud.fraud_decide(order_id=order.public_id, approve=True) is False
    assert not events(order, "fraud.cleared")
    assert len(events(order, "fraud.review_expired")) == 1
    assert FraudCheck.objects.get(pk=check.pk).decision == Decision.EXPIRED


def test_a_decision_within_the_deadline_is_never_expired(catalog):
    order, check = in_review()
    assert fraud.fraud_decide(order_id=order.public_id, approve=True) is True
    assert fraud.fraud_expire_reviews(now=check.review_deadline + timedelta(days=2)) == 0
    assert not events(order, "fraud.review_expired")
    apply(order, "fraud.cleared")
    assert Order.objects.get(pk=order.pk).status == "placed"  # resumed, waiting for its other steps


def test_an_expiry_for_an_order_cancelled_meanwhile_changes_nothing(catalog):
    order, check = in_review()
    apply(order, "payment.declined", {"reason": "payment declined: card declined"})
    fraud.fraud_expire_reviews(now=check.review_deadline + timedelta(seconds=1))
    (expired,) = events(order, "fraud.review_expired")
    apply(order, "fraud.review_expired", expired.payload)
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == ("cancelled", "payment declined: card declined")
    assert len(events(order, "order.cancelled")) == 1


def test_the_sweeper_skips_a_review_locked_by_another_transaction(catalog):
    """SELECT ... FOR UPDATE SKIP LOCKED: two sweepers (or a sweeper and a staff decision)
    never wait on each other, and never expire one review twice."""
    _, check = in_review()
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                FraudCheck.objects.select_for_update().get(pk=check.pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(30)
        assert fraud.fraud_expire_reviews(now=check.review_deadline + timedelta(seconds=1)) == 0
    finally:
        release.set()
        holder.join(30)
    assert fraud.fraud_expire_reviews(now=check.review_deadline + timedelta(seconds=1)) == 1


def test_the_checker_reports_a_review_past_its_deadline(catalog):
    order, check = in_review()
    found = audit.run()
    assert ("review-past-deadline", order.public_id) not in {(f.check, f.order_id) for f in found.violations}
    assert ("awaiting-review", order.public_id) in {(f.check, f.order_id) for f in found.warnings}

    FraudCheck.objects.filter(pk=check.pk).update(review_deadline=timezone.now() - timedelta(minutes=5))
    assert ("review-past-deadline", order.public_id) in {(f.check, f.order_id) for f in audit.run().violations}

    fraud.fraud_expire_reviews()
    (expired,) = events(order, "fraud.review_expired")
    apply(order, "fraud.review_expired", expired.payload)
    assert ("review-past-deadline", order.public_id) not in {(f.check, f.order_id) for f in audit.run().violations}


DEADLINE = 10  # seconds: long enough for a staff decision in time on a loaded machine, short for the test


@pytest.fixture
def short_deadline_pipeline(catalog, tmp_path):
    """Workers (with beat) and a relay whose fraud reviews expire after DEADLINE seconds."""
    from shop.celery import app

    app.control.purge()
    pipeline = Pipeline(tmp_path)
    env = {"FRAUD_REVIEW_DEADLINE_SECONDS": str(DEADLINE), "FRAUD_REVIEW_SWEEP_SECONDS": "0.5"}
    pipeline.procs["worker"] = harness.worker(tmp_path, name="deadline", **env)
    pipeline.procs["relay"] = harness.relay(tmp_path, **env)
    pipeline.stopped = False
    try:
        yield pipeline
        pipeline.wait_quiet(60)
    finally:
        pipeline.stop()


@pytest.mark.pipeline
def test_an_expired_review_is_cancelled_end_to_end_and_the_checker_is_clean(short_deadline_pipeline, shop_api):
    pipeline = short_deadline_pipeline
    happy = shop_api.place(email=f"{uuid.uuid4().hex[:8]}@example.com")["id"]
    declined = shop_api.place(email=f"{uuid.uuid4().hex[:8]}@example.com", card=CARD_DECLINED)["id"]
    expires = shop_api.place(email=f"{uuid.uuid4().hex[:8]}@yopmail.com", sku="SKU-2", quantity=2)["id"]
    approved = shop_api.place(email=f"{uuid.uuid4().hex[:8]}@yopmail.com")["id"]

    # Staff approve one review as soon as it exists; the other one nobody decides.
    harness.wait_until(lambda: FraudCheck.objects.filter(order_id=approved).exists(), 60, what="the review to exist")
    assert fraud.fraud_decide(order_id=approved, approve=True)

    statuses = pipeline.wait_terminal([happy, declined, expires, approved], timeout=120)
    assert statuses == {happy: "delivered", declined: "cancelled", expires: "cancelled", approved: "delivered"}
    order = Order.objects.get(public_id=expires)
    assert order.cancel_reason == REASON
    assert fraud.fraud_decide(order_id=expires, approve=True) is False  # too late: stays cancelled
    pipeline.wait_quiet(60)

    # The compensations ran: stock released, the authorisation voided, the customer told why.
    assert StockItem.objects.get(sku="SKU-2").available == 5
    ops = set(GatewayTransaction.objects.filter(reference=expires, approved=True).values_list("operation", flat=True))
    assert ops == {"authorize", "void"}
    email = harness.wait_until(
        lambda: MailboxMessage.objects.filter(order_id=expires, kind="cancelled").first(), 30, what="the cancellation email"
    )
    assert "we could not finish checking your order in time" in email.body
    assert REASON not in email.body  # the staff reason stays with the staff
    timeline = [e.message for e in OutboxEvent.objects.filter(order_id=expires).order_by("id")]
    assert any("not completed in time" in m for m in timeline)
    assert Order.objects.get(public_id=expires).status == "cancelled"

    # Nothing the checker can see is wrong, and it did look (the pipeline is quiet).
    def quiet_report() -> audit.Report | None:
        report = audit.run(expected_orders=[happy, declined, expires, approved])
        return report if report.stats["quiet"] else None

    report = harness.wait_until(quiet_report, 60, interval=1, what="the checker to see a quiet pipeline")
    assert report.ok, "\n".join(str(v) for v in report.violations)
