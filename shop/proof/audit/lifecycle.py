"""Orders: none lost, none stuck, none left in a fraud review past its deadline.

Tables: orders_order, shop_outboxevent (order.placed), fraud_fraudcheck.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from orders.fraud.models import Decision, FraudCheck
from orders.models import TERMINAL, Order, OrderStatus
from shop.proof.audit.base import Context, Report, rows


def lost_orders(ctx: Context, report: Report) -> None:
    """Every order the customer saw confirmed is in the database."""
    if ctx.expected_orders is None:
        return
    for order_id in sorted(set(ctx.expected_orders) - set(ctx.statuses)):
        report.bad("lost-order", order_id, "confirmed to the customer but not in the database")


def stuck_orders(ctx: Context, report: Report) -> None:
    """An open order moves on; one in review waits for staff (its deadline is the rule below)."""
    open_orders = Order.objects.exclude(status__in=TERMINAL).values_list("public_id", "status", "updated_at")
    for order_id, status, updated in open_orders:
        if status == OrderStatus.REVIEW:
            report.warn("awaiting-review", order_id, "waits for a staff fraud decision")
        elif updated < ctx.stale:
            report.bad("stuck-order", order_id, f"{status} with no progress for {int((ctx.now - updated).total_seconds())} s")


def lost_placed_events(ctx: Context, report: Report) -> None:
    for (order_id,) in rows(
        "SELECT o.public_id FROM orders_order o WHERE NOT EXISTS "
        "(SELECT 1 FROM shop_outboxevent e WHERE e.order_id = o.public_id AND e.kind = 'order.placed')"
    ):
        report.bad("lost-event", order_id, "order without its order.placed event")


def reviews_past_deadline(ctx: Context, report: Report) -> None:
    """A review is decided or expired by its deadline (plus a sweep or two), and the
    order follows: an order still in review then is waiting forever."""
    late = ctx.now - timedelta(seconds=ctx.grace_seconds + 2 * settings.FRAUD_REVIEW_SWEEP_SECONDS)
    for order_id, deadline in FraudCheck.objects.filter(decision=Decision.REVIEW, review_deadline__lt=late).values_list(
        "order_id", "review_deadline"
    ):
        overdue = int((ctx.now - deadline).total_seconds())
        report.bad("review-past-deadline", order_id, f"fraud review still open {overdue} s past its deadline")
    in_review = [oid for oid, status in ctx.statuses.items() if status == OrderStatus.REVIEW]
    closed = FraudCheck.objects.filter(order_id__in=in_review, decided_at__lt=late).values_list("order_id", "decision")
    for order_id, decision in closed:
        report.bad("review-past-deadline", order_id, f"fraud review {decision} but the order is still in review")
