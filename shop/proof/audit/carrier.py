"""The carrier's own ledger: no parcel reaches a customer for an order that was cancelled or not paid.

Tables: shipping_carrierparcel (the simulated carrier's parcels, read through its own
``track``), shipping_shipment (what the shop heard), payments_gatewaytransaction,
orders_order. Run only when the pipeline is quiet: a cancellation's label
cancel, or a capture, may still be on its way.
"""

from __future__ import annotations

from dataclasses import dataclass

from orders.models import OrderStatus
from shop.proof.audit.base import Context, Report

LABEL_KEY_PREFIX = "label-"  # the shop buys each order's label with the key "label-<order id>"


@dataclass(frozen=True)
class Parcel:
    order_id: str
    tracking_number: str
    status: str  # the carrier's: label_created, in_transit, delivered, cancelled


def carrier_parcels() -> list[Parcel]:
    """Every parcel in the carrier's ledger, with the carrier's status for it.

    The simulated carrier moves parcels on with time; one the shop already recorded
    as delivered counts as delivered even if this process's clock settings differ.
    """
    from shipping import carrier
    from shipping.models import CarrierParcel, Shipment, ShipmentStatus

    ledger = list(CarrierParcel.objects.values_list("idempotency_key", "tracking_number"))
    tracked = {t.tracking_number: t.status for t in carrier.track([number for _, number in ledger])}
    heard_delivered = set(
        Shipment.objects.filter(status=ShipmentStatus.DELIVERED).values_list("tracking_number", flat=True)
    )
    parcels = []
    for key, number in ledger:
        status = tracked.get(number, "unknown")
        if status != "cancelled" and number in heard_delivered:
            status = "delivered"
        parcels.append(Parcel(key.removeprefix(LABEL_KEY_PREFIX), number, status))
    return parcels


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
