"""Money: at most one charge, and every charge accounted for, read from the gateway's own ledger.

Tables: payments_gatewaytransaction (the simulated gateway's ledger), orders_order.
"""

from __future__ import annotations

from orders.models import OrderStatus
from shop.proof.audit.base import Context, Report, rows

CHARGED_OK = (OrderStatus.SHIPPED, OrderStatus.IN_TRANSIT, OrderStatus.DELIVERED, OrderStatus.CANCELLED)
# The capture comes before the label: until the pipeline is quiet, a captured order may still be
# waiting for payment.captured (ready) or for its shipment (paid).
CAPTURE_IN_FLIGHT = (OrderStatus.READY, OrderStatus.PAID)


def double_operations(ctx: Context, report: Report) -> None:
    for reference, op, n in rows(
        "SELECT reference, operation, count(*) FROM payments_gatewaytransaction WHERE approved "
        "GROUP BY reference, operation HAVING count(*) > 1"
    ):
        report.bad("double-" + op, reference, f"{n} approved {op} operations at the gateway")


def money_left_behind(ctx: Context, report: Report) -> None:
    """A cancelled order keeps no money and no open authorisation; a capture means the parcel left."""
    for reference, done in ctx.gateway_ops.items():
        status = ctx.statuses.get(reference)
        if "capture" in done and status == OrderStatus.CANCELLED and "refund" not in done:
            report.bad("captured-not-refunded", reference, "cancelled order whose payment was captured and not refunded")
        in_flight = status in CAPTURE_IN_FLIGHT and not ctx.quiet  # captured, its label on the way
        if "capture" in done and status not in CHARGED_OK and not in_flight:
            report.bad("captured-not-shipped", reference, f"payment captured while the order is {status}")
        if status == OrderStatus.CANCELLED and "authorize" in done and not done & {"void", "refund"}:
            report.bad("authorisation-left-open", reference, "cancelled order with an authorisation never voided")


def delivered_not_charged(ctx: Context, report: Report) -> None:
    """Also orders the gateway never heard of."""
    for order_id, status in ctx.statuses.items():
        if status == OrderStatus.DELIVERED and "capture" not in ctx.gateway_ops.get(order_id, set()):
            report.bad("delivered-not-charged", order_id, "delivered without a captured payment")
