"""A simulated carrier: labels with idempotency keys, and tracking that moves with time.

Selling a label takes ``carrier_label_ms``. A parcel goes in transit ``carrier_transit_seconds`` after its label and is
delivered ``carrier_delivery_seconds`` after it (fault switches, so the demo and
the tests can run it fast or slow). The shop polls for updates, as many real
carrier integrations do.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from shipping.models import CarrierParcel
from shop.pipeline import faults


@dataclass(frozen=True)
class Tracking:
    tracking_number: str
    status: str  # label_created, in_transit, delivered, cancelled


def create_label(*, key: str, address: dict) -> str:
    """Buy a label; the same key returns the same tracking number."""
    faults.simulated_delay("carrier_label_ms")
    existing = CarrierParcel.objects.filter(idempotency_key=key).first()
    if existing:
        return existing.tracking_number
    try:
        with transaction.atomic():
            parcel = CarrierParcel.objects.create(
                idempotency_key=key, tracking_number=f"PS{secrets.token_hex(6).upper()}", address=address
            )
    except IntegrityError:
        parcel = CarrierParcel.objects.get(idempotency_key=key)
    return parcel.tracking_number


def cancel_label(*, tracking_number: str) -> bool:
    return CarrierParcel.objects.filter(tracking_number=tracking_number).update(cancelled=True) == 1


def track(tracking_numbers: list[str]) -> list[Tracking]:
    now = timezone.now()
    transit = faults.get_float("carrier_transit_seconds")
    delivery = faults.get_float("carrier_delivery_seconds")
    out = []
    for parcel in CarrierParcel.objects.filter(tracking_number__in=tracking_numbers):
        age = (now - parcel.created_at).total_seconds()
        if parcel.cancelled:
            status = "cancelled"
        elif age >= delivery:
            status = "delivered"
        elif age >= transit:
            status = "in_transit"
        else:
            status = "label_created"
        out.append(Tracking(parcel.tracking_number, status))
    return out
