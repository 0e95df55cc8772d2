"""The invariant checker, tested by breaking each invariant by hand and seeing it reported."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from inventory.models import HoldStatus, StockHold, StockItem
from notifications.models import MailboxMessage, SentEmail
from orders.fraud.models import FraudCheck
from orders.models import Order, OrderStatus
from orders.payments.models import GatewayTransaction
from shipping.models import CarrierParcel, Shipment
from shop.pipeline.models import DeadLetter, OutboxEvent, ProcessedMessage
from shop.pipeline.outbox import emit
from shop.proof import audit
from shop.storefront.checkout import CheckoutRequest, place
from tests import harness
from tests.fixtures import order_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]


def new_order(status: str | None = None) -> Order:
    body = order_body(email=f"{uuid.uuid4().hex[:10]}@example.com")
    order, _ = place(CheckoutRequest(body["email"], body["name"], body["address"], body["items"], body["card"]))
    if status:
        Order.objects.filter(pk=order.pk).update(status=status)
        order.refresh_from_db()
    return order


def ledger(order: Order, operation: str, approved: bool = True) -> None:
    GatewayTransaction.objects.create(
        idempotency_key=uuid.uuid4().hex,
        operation=operation,
        reference=order.public_id,
        request_hash="x",
        amount=order.total,
        approved=approved,
    )


def checks(**kw) -> set[tuple[str, str]]:
    return {(f.check, f.order_id) for f in audit.run(**kw).violations}


def test_a_consistent_database_is_clean(catalog):
    order = new_order(OrderStatus.DELIVERED)
    ledger(order, "authorize")
    ledger(order, "capture")
    OutboxEvent.objects.filter(order_id=order.public_id).update(published_at=timezone.now())
    StockItem.objects.filter(sku="SKU-1").update(available=99, shipped=1)
    StockHold.objects.create(order_id=order.public_id, status=HoldStatus.COMMITTED, lines=[{"sku": "SKU-1", "quantity": 1}])
    report = audit.run(expected_orders=[order.public_id])
    assert report.ok, report.violations
    assert report.stats["delivered"] == 1


def test_lost_and_stuck_orders(catalog):
    stuck = new_order()
    Order.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    found = checks(expected_orders=[stuck.public_id, "ConfirmedButGone"], deadline_seconds=60)
    assert ("lost-order", "ConfirmedButGone") in found
    assert ("stuck-order", stuck.public_id) in found


def test_order_without_its_placed_event(catalog):
    order = new_order()
    OutboxEvent.objects.filter(order_id=order.public_id, kind="order.placed").delete()
    assert ("lost-event", order.public_id) in checks()


def test_two_charges_for_one_order(catalog):
    order = new_order(OrderStatus.DELIVERED)
    ledger(order, "authorize")
    ledger(order, "capture")
    ledger(order, "capture")
    ledger(order, "capture", approved=False)  # a declined attempt is not a charge
    assert ("double-capture", order.public_id) in checks()


def test_money_left_behind_by_a_cancelled_order(catalog):
    captured = new_order(OrderStatus.CANCELLED)
    ledger(captured, "authorize")
    ledger(captured, "capture")
    held = new_order(OrderStatus.CANCELLED)
    ledger(held, "authorize")
    found = checks()
    assert ("captured-not-refunded", captured.public_id) in found
    assert ("authorisation-left-open", held.public_id) in found


def test_captured_but_not_shipped_and_delivered_but_not_charged(catalog):
    early = new_order(OrderStatus.PLACED)  # captured before the join said ready: always wrong
    waiting = new_order(OrderStatus.PAID)  # captured, its label still on the way while events are in flight
    for order in (early, waiting):
        ledger(order, "authorize")
        ledger(order, "capture")
    free = new_order(OrderStatus.DELIVERED)
    found = checks()
    assert ("captured-not-shipped", early.public_id) in found
    assert ("captured-not-shipped", waiting.public_id) not in found
    assert ("delivered-not-charged", free.public_id) in found
    settle()  # quiet: a paid order with no parcel is stuck
    assert ("captured-not-shipped", waiting.public_id) in checks()


def test_two_emails_of_one_kind(catalog):
    order = new_order()
    for _ in range(2):
        MailboxMessage.objects.create(message_id=uuid.uuid4().hex, to="a@example.com", subject="s", body="b",
                                      order_id=order.public_id, kind="received")  # fmt: skip
    assert ("duplicate-email", order.public_id) in checks()


def test_stock_not_conserved_and_holds_leaked(catalog):
    StockItem.objects.filter(sku="SKU-2").update(available=4)  # one unit vanished
    cancelled = new_order(OrderStatus.CANCELLED)
    StockHold.objects.create(order_id=cancelled.public_id, status=HoldStatus.HELD, lines=[{"sku": "SKU-1", "quantity": 2}])
    found = checks()
    assert ("stock-not-conserved", "") in found
    assert ("stock-hold-leaked", cancelled.public_id) in found
    assert ("reservations-mismatch", "") in found  # two units held, none reserved


def test_a_hold_whose_ending_event_is_still_queued_is_in_flight_not_leaked(catalog):
    """In a backlog the carrier can deliver an order before the inventory queue gets to commit its
    hold (FIFO behind the new orders' reservations): held, with its shipment.created not yet
    processed by commit_stock, is in flight. Processed, or waiting past the deadline, it leaked."""
    order = delivered_order()
    StockHold.objects.filter(order_id=order.public_id).update(status=HoldStatus.HELD)
    event = OutboxEvent.objects.create(kind="shipment.created", order_id=order.public_id, payload={}, published_at=timezone.now())
    leaked = ("stock-hold-leaked", order.public_id)
    assert leaked not in checks()
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    assert leaked in checks()  # waiting that long is no backlog the deadline allows
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now())
    ProcessedMessage.objects.create(message_id=event.event_id, handler="inventory.tasks.commit_stock")
    assert leaked in checks()  # handled, and still held


def test_stock_below_zero_is_refused_by_the_database(catalog):
    """The checker's 'negative-stock' can never fire: the CHECK constraint refuses the write."""
    with pytest.raises(IntegrityError), transaction.atomic():
        StockItem.objects.filter(sku="SKU-3").update(available=-1)


def test_outbox_not_draining_and_dead_letters(catalog):
    order = new_order()
    OutboxEvent.objects.filter(order_id=order.public_id).update(created_at=timezone.now() - timedelta(minutes=5))
    DeadLetter.objects.create(task="inventory.tasks.reserve_stock", message_id="m1", order_id=order.public_id, error="boom")
    found = checks(deadline_seconds=60)
    assert ("outbox-stuck", order.public_id) in found
    assert ("dead-letter", order.public_id) in found
    assert ("dead-letter", order.public_id) not in checks(deadline_seconds=60, allowed_dead_letters=1)


def test_the_command_prints_each_violation_and_exits_1(catalog, tmp_path):
    order = new_order(OrderStatus.DELIVERED)
    expect = tmp_path / "confirmed.json"
    expect.write_text(json.dumps([order.public_id, "NeverStored"]))
    env = harness.child_env()
    done = subprocess.run([sys.executable, "manage.py", "audit", "--expect", str(expect)], cwd=harness.ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"VIOLATION delivered-not-charged: order {order.public_id}" in done.stdout
    assert "VIOLATION lost-order: order NeverStored" in done.stdout

    ledger(order, "authorize")
    ledger(order, "capture")
    OutboxEvent.objects.update(published_at=timezone.now())
    StockItem.objects.filter(sku="SKU-1").update(available=99, shipped=1)
    StockHold.objects.create(order_id=order.public_id, status=HoldStatus.COMMITTED, lines=[{"sku": "SKU-1", "quantity": 1}])
    expect.write_text(json.dumps([order.public_id]))
    done = subprocess.run([sys.executable, "manage.py", "audit", "--expect", str(expect), "--json"], cwd=harness.ROOT,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert Decimal(order.total) > 0


# ---- The rules that compare one step's records with another's (run when the pipeline is quiet) ----

ORDER_HANDLER = "orders.apply_order_event"  # the order state machine's processed-message name


def settle() -> None:
    """Every event published a minute ago: the pipeline is quiet."""
    then = timezone.now() - timedelta(minutes=1)
    OutboxEvent.objects.update(created_at=then, published_at=then)
    ProcessedMessage.objects.update(processed_at=then)


def process_all(order: Order) -> None:
    """Record every subscriber of every event of the order as done, as a finished pipeline does."""
    from shop.pipeline.events import ORDER_STEP, subscribers

    for event in OutboxEvent.objects.filter(order_id=order.public_id):
        for sub in subscribers(event.kind):
            handler = ORDER_HANDLER if sub.task == ORDER_STEP else sub.task
            ProcessedMessage.objects.get_or_create(message_id=event.event_id, handler=handler)


def parcel(order: Order, *, cancelled: bool = False, age: float = 60) -> CarrierParcel:
    """A parcel in the carrier's own ledger; older than the delivery time, so delivered unless cancelled."""
    p = CarrierParcel.objects.create(idempotency_key=f"label-{order.public_id}", tracking_number=f"PS{uuid.uuid4().hex[:10]}",
                                     cancelled=cancelled)  # fmt: skip
    CarrierParcel.objects.filter(pk=p.pk).update(created_at=timezone.now() - timedelta(seconds=age))
    return p


def mail(order: Order, kind: str) -> None:
    MailboxMessage.objects.create(message_id=uuid.uuid4().hex, to="a@example.com", subject="s", body="b",
                                  order_id=order.public_id, kind=kind)  # fmt: skip


def delivered_order() -> Order:
    """A delivered order whose every record agrees: the starting point each test below breaks."""
    order = new_order(OrderStatus.DELIVERED)
    ledger(order, "authorize")
    ledger(order, "capture")
    StockItem.objects.filter(sku="SKU-1").update(available=99, shipped=1)
    StockHold.objects.create(order_id=order.public_id, status=HoldStatus.COMMITTED, lines=[{"sku": "SKU-1", "quantity": 1}])
    p = parcel(order)
    Shipment.objects.create(order_id=order.public_id, status="delivered", tracking_number=p.tracking_number)
    mail(order, "received")
    mail(order, "shipped")
    process_all(order)
    settle()
    return order


def test_a_quiet_consistent_database_is_clean(catalog):
    order = delivered_order()
    report = audit.run(expected_orders=[order.public_id])
    assert report.ok, report.violations
    assert report.stats["quiet"] == 1


def test_an_event_one_subscriber_never_processed(catalog):
    order = delivered_order()
    placed = OutboxEvent.objects.get(order_id=order.public_id, kind="order.placed")
    ProcessedMessage.objects.filter(message_id=placed.event_id, handler="inventory.tasks.reserve_stock").delete()
    (finding,) = [f for f in audit.run().violations if f.check == "event-not-processed"]
    assert finding.order_id == order.public_id
    assert "order.placed" in finding.detail and "inventory.tasks.reserve_stock" in finding.detail

    # Parked as a dead letter, it is accounted for there, not twice.
    DeadLetter.objects.create(task="inventory.tasks.reserve_stock", message_id=str(placed.event_id), order_id=order.public_id,
                              error="boom")  # fmt: skip
    assert ("event-not-processed", order.public_id) not in checks(allowed_dead_letters=1)


def test_the_quiet_rules_wait_for_a_quiet_pipeline(catalog):
    order = delivered_order()
    ProcessedMessage.objects.all().delete()
    assert ("event-not-processed", order.public_id) in checks()
    busy = new_order()  # its order.placed is not published yet
    report = audit.run()
    assert ("event-not-processed", order.public_id) not in {(f.check, f.order_id) for f in report.violations}
    assert report.stats["quiet"] == 0 and any(f.check == "pipeline-busy" for f in report.warnings)
    OutboxEvent.objects.filter(order_id=busy.public_id).update(published_at=timezone.now())  # published, within the grace
    assert audit.run().stats["quiet"] == 0
    settle()
    assert audit.run().stats["quiet"] == 1
    # A worker still working through a backlog of messages whose handlers write no event (stock
    # commits, emails): nothing new in the outbox, but the records show it is not quiet.
    ProcessedMessage.objects.create(message_id=uuid.uuid4(), handler="inventory.tasks.commit_stock")
    assert audit.run().stats["quiet"] == 0


def test_stock_checked_against_the_holds_ledger_and_the_parcels(catalog):
    """The counters still add up (99 + 0 + 1 = 100), but the order's units were released
    while its parcel was delivered: only the holds ledger and the carrier tell."""
    order = delivered_order()
    StockHold.objects.filter(order_id=order.public_id).update(status=HoldStatus.RELEASED)
    found = checks()
    assert ("delivered-units-released", order.public_id) in found
    assert ("shipped-mismatch", "") in found
    assert ("stock-not-conserved", "") in found


def test_units_shipped_without_a_parcel(catalog):
    order = delivered_order()
    CarrierParcel.objects.filter(idempotency_key=f"label-{order.public_id}").update(cancelled=True)
    assert ("shipped-without-parcel", order.public_id) in checks()


def test_a_hold_that_is_not_what_was_ordered(catalog):
    order = delivered_order()
    StockHold.objects.filter(order_id=order.public_id).update(lines=[{"sku": "SKU-1", "quantity": 3}])
    StockItem.objects.filter(sku="SKU-1").update(available=97, shipped=3)  # counters and ledger agree
    assert ("hold-not-as-ordered", order.public_id) in checks()


def test_the_carriers_ledger_a_parcel_delivered_for_a_cancelled_or_unpaid_order(catalog):
    cancelled = new_order(OrderStatus.CANCELLED)
    ledger(cancelled, "authorize")
    ledger(cancelled, "void")
    parcel(cancelled)
    unpaid = new_order(OrderStatus.SHIPPED)
    ledger(unpaid, "authorize")
    parcel(unpaid)
    stopped = new_order(OrderStatus.CANCELLED)  # its label was cancelled in time: fine
    parcel(stopped, cancelled=True)
    settle()
    found = checks()
    assert ("parcel-delivered-cancelled", cancelled.public_id) in found
    assert ("parcel-delivered-unpaid", unpaid.public_id) in found
    assert not {c for c, oid in found if oid == stopped.public_id and c.startswith("parcel-")}


def test_every_order_got_its_received_email_and_its_outcome_email(catalog):
    order = delivered_order()
    MailboxMessage.objects.filter(order_id=order.public_id, kind="shipped").delete()
    cancelled = new_order(OrderStatus.CANCELLED)
    mail(cancelled, "received")
    in_doubt = new_order(OrderStatus.CANCELLED)
    mail(in_doubt, "received")
    SentEmail.objects.create(order_id=in_doubt.public_id, kind="cancelled", to="a@example.com", subject="s",
                             status=SentEmail.Status.IN_DOUBT)  # fmt: skip
    never_told = new_order(OrderStatus.CANCELLED)
    mail(never_told, "cancelled")
    settle()
    found = {(f.check, f.order_id, f.detail.split("'")[1]) for f in audit.run().violations if f.check == "email-missing"}
    assert found == {
        ("email-missing", order.public_id, "shipped"),
        ("email-missing", cancelled.public_id, "cancelled"),
        ("email-missing", never_told.public_id, "received"),
    }


def test_a_staff_resend_of_an_email_in_doubt_is_the_only_second_copy_allowed(catalog):
    order = delivered_order()
    email = SentEmail.objects.create(order_id=order.public_id, kind="shipped", to="a@example.com", subject="s",
                                     status=SentEmail.Status.IN_DOUBT)  # fmt: skip
    settle()
    assert ("email-in-doubt", order.public_id) in {(f.check, f.order_id) for f in audit.run().warnings}
    mail(order, "shipped")  # the copy the server may have taken before the crash
    assert ("duplicate-email", order.public_id) in checks()
    SentEmail.objects.filter(pk=email.pk).update(status=SentEmail.Status.SENT, resends=1)
    assert ("duplicate-email", order.public_id) not in checks()
    assert ("email-in-doubt", order.public_id) not in {(f.check, f.order_id) for f in audit.run().warnings}
    mail(order, "shipped")
    assert ("duplicate-email", order.public_id) in checks()


def test_a_replay_that_never_finished(catalog):
    order = delivered_order()
    placed = OutboxEvent.objects.get(order_id=order.public_id, kind="order.placed")
    ProcessedMessage.objects.filter(message_id=placed.event_id, handler="inventory.tasks.reserve_stock").delete()
    DeadLetter.objects.create(task="inventory.tasks.reserve_stock", message_id=str(placed.event_id), order_id=order.public_id,
                              error="boom", status=DeadLetter.Status.REPLAYED,
                              replayed_at=timezone.now() - timedelta(minutes=1))  # fmt: skip
    assert ("replay-unfinished", order.public_id) in checks()
    ProcessedMessage.objects.create(message_id=placed.event_id, handler="inventory.tasks.reserve_stock")
    assert ("replay-unfinished", order.public_id) not in checks()


def test_a_redrive_that_never_finished(catalog):
    order = delivered_order()
    with transaction.atomic():
        row = emit("stage.redriven", order_id=order.public_id, payload={}, target_task="inventory.tasks.commit_stock")
    settle()
    assert ("redrive-unfinished", order.public_id) in checks()
    ProcessedMessage.objects.create(message_id=row.event_id, handler="inventory.tasks.commit_stock")
    assert ("redrive-unfinished", order.public_id) not in checks()


def test_a_review_past_its_deadline(catalog):
    waiting = new_order(OrderStatus.REVIEW)
    FraudCheck.objects.create(order_id=waiting.public_id, email=waiting.email, amount=waiting.total, score=50,
                              decision="review", review_deadline=timezone.now() + timedelta(hours=1))  # fmt: skip
    late = new_order(OrderStatus.REVIEW)
    FraudCheck.objects.create(order_id=late.public_id, email=late.email, amount=late.total, score=50,
                              decision="review", review_deadline=timezone.now() - timedelta(minutes=10))  # fmt: skip
    found = checks()
    assert ("review-past-deadline", late.public_id) in found
    assert ("review-past-deadline", waiting.public_id) not in found


def test_every_rule_reads_one_snapshot_while_the_pipeline_moves_on(catalog, monkeypatch):
    """Under load an order can move on between two of the checker's reads: its status read as
    placed, then its capture (made since) read from the gateway's ledger, a violation that never
    was. The checker reads every table in one repeatable-read snapshot."""
    from django.db import connections

    from shop.proof.audit.base import Context

    order = new_order()
    ledger(order, "authorize")
    read_statuses = Context.statuses.func

    moved = []

    def statuses_then_the_pipeline_moves_on(ctx):
        found = read_statuses(ctx)
        if moved:
            return found
        moved.append(True)
        other = connections.create_connection("default")  # another process's commit
        try:
            with other.cursor() as cur:
                cur.execute("UPDATE orders_order SET status = 'ready' WHERE public_id = %s", [order.public_id])
                cur.execute(
                    "INSERT INTO payments_gatewaytransaction (idempotency_key, operation, reference, request_hash, amount,"
                    " approved, authorization_id, decline_code, card_token, created_at)"
                    " VALUES (%s, 'capture', %s, 'x', %s, true, '', '', '', now())",
                    [uuid.uuid4().hex, order.public_id, order.total],
                )
        finally:
            other.close()
        return found

    reader = functools.cached_property(statuses_then_the_pipeline_moves_on)
    reader.__set_name__(Context, "statuses")
    monkeypatch.setattr(Context, "statuses", reader)
    assert ("captured-not-shipped", order.public_id) not in checks(quiet=False)
