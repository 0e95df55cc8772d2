"""The carrier's ledger as the checker reads it: every parcel with the carrier's own status.

Apart from the carrier rule (``carrier.py``) so that the checker's context (``base.py``) can
load it without the two importing each other."""

from __future__ import annotations

from dataclasses import dataclass

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
    heard_delivered = set(Shipment.objects.filter(status=ShipmentStatus.DELIVERED).values_list("tracking_number", flat=True))
    parcels = []
    for key, number in ledger:
        status = tracked.get(number, "unknown")
        if status != "cancelled" and number in heard_delivered:
            status = "delivered"
        parcels.append(Parcel(key.removeprefix(LABEL_KEY_PREFIX), number, status))
    return parcels
