"""What the shipping steps already did for an order, asked before a staff re-drive: one
``Shipment`` per order, whose status ``shipment_create`` and ``shipment_cancel`` check
before they buy or cancel a label (the carrier's label key is the order's too)."""

from __future__ import annotations

from shipping.models import Shipment, ShipmentStatus
from shop.pipeline.redrive import register_effect_check

S = ShipmentStatus


def label_bought(order_id: str, event: str) -> str:
    shipment = Shipment.objects.filter(order_id=order_id).first()
    if shipment is None or shipment.status == S.PENDING:
        return ""
    if shipment.status == S.CANCELLED:
        return "the shipment was cancelled"
    return f"shipment {shipment.tracking_number} already exists ({shipment.status})"


def label_cancelled(order_id: str, event: str) -> str:
    status = Shipment.objects.filter(order_id=order_id).values_list("status", flat=True).first()
    if status == S.CANCELLED:
        return "the shipment is already cancelled"
    if status in (S.IN_TRANSIT, S.DELIVERED):
        return f"the parcel is already {status}: it cannot be recalled"
    return ""


def register() -> None:
    register_effect_check("shipping.tasks.create_shipment", label_bought)
    register_effect_check("shipping.tasks.cancel_shipment", label_cancelled)
