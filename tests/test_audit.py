"""The invariant checker, tested by breaking each invariant by hand and seeing it reported."""

from __future__ import annotations

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
from notifications.models import MailboxMessage
from orders.models import Order, OrderStatus
from orders.payments.models import GatewayTransaction
from shop import audit
from shop.checkout import CheckoutRequest, place
from shop.models import DeadLetter, OutboxEvent
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
    early = new_order(OrderStatus.READY)
    ledger(early, "authorize")
    ledger(early, "capture")
    free = new_order(OrderStatus.DELIVERED)
    found = checks()
    assert ("captured-not-shipped", early.public_id) in found
    assert ("delivered-not-charged", free.public_id) in found


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
