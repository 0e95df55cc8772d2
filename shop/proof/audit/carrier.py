"""The carrier's own ledger: no parcel reaches a customer for an order that was cancelled or not paid.

Tables: shipping_carrierparcel (the simulated carrier's parcels, read through its own
``track``), shipping_shipment (what the shop heard), payments_gatewaytransaction,
orders_order. Run only when the pipeline is quiet: a cancellation's label
cancel, or a capture, may still be on its way.
"""

from __future__ import annotations

from orders.models import OrderStatus
from shop.proof.audit.base import Context, Report


def parcels_for_ended_orders(ctx: Context, report: Report) -> None:
    """Never a parcel for money that was not captured, nor for an order the customer saw cancelled."""
    for parcel in ctx.parcels:
        if parcel.status != "delivered":
            continue
        name = f"parcel {parcel.tracking_number}"
        if ctx.statuses.get(parcel.order_id) == OrderStatus.CANCELLED:
            report.bad("parcel-delivered-cancelled", parcel.order_id, f"{name} delivered for a cancelled order")
        if "capture" not in ctx.gateway_ops.get(parcel.order_id, set()):
            report.bad("parcel-delivered-unpaid", parcel.order_id, f"{name} delivered, payment never captured")
