"""The carrier poll reaches every open shipment, however many newer parcels are in flight."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from shipping import carrier
from shipping import services as shipping
from shipping.models import CarrierParcel, Shipment, ShipmentStatus
from shop.pipeline.models import OutboxEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("without_shared_pipeline")]


def open_shipments(n: int, *, prefix: str) -> list[str]:
    """``n`` shipments with a label (status created), as the carrier and the shop both record them."""
    numbers = [f"{prefix}{i:05d}" for i in range(n)]
    CarrierParcel.objects.bulk_create([CarrierParcel(idempotency_key=f"label-{t}", tracking_number=t) for t in numbers])
    Shipment.objects.bulk_create(
        [Shipment(order_id=f"order-{t}", tracking_number=t, status=ShipmentStatus.CREATED) for t in numbers]
    )
    return numbers


@pytest.fixture
def slow_carrier(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parcels go in transit at once and take an hour to arrive."""
    monkeypatch.setenv("FAULT_CARRIER_TRANSIT_SECONDS", "0")
    monkeypatch.setenv("FAULT_CARRIER_DELIVERY_SECONDS", "3600")


def test_an_old_parcel_is_delivered_while_more_newer_ones_are_in_flight_than_one_poll_takes(slow_carrier: None) -> None:
    (old,) = open_shipments(1, prefix="OLD")
    CarrierParcel.objects.filter(tracking_number=old).update(created_at=timezone.now() - timedelta(hours=2))
    newer = open_shipments(shipping.POLL_BATCH + 60, prefix="NEW")

    polls = math.ceil((len(newer) + 1) / shipping.POLL_BATCH)
    for _ in range(polls):
        shipping.shipments_sync()

    assert Shipment.objects.get(tracking_number=old).status == ShipmentStatus.DELIVERED
    assert OutboxEvent.objects.filter(order_id=f"order-{old}", kind="shipment.delivered").count() == 1
    statuses = Counter(Shipment.objects.filter(tracking_number__in=newer).values_list("status", flat=True))
    assert statuses == {ShipmentStatus.IN_TRANSIT: len(newer)}


def test_every_open_shipment_is_polled_once_per_round_of_polls(slow_carrier: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """With N open and ``limit`` per poll, ceil(N / limit) polls ask about each parcel once."""
    numbers = open_shipments(23, prefix="RR")
    asked: Counter[str] = Counter()
    real_track = carrier.track

    def track(tracking_numbers: list[str]) -> list[carrier.Tracking]:
        asked.update(tracking_numbers)
        return real_track(tracking_numbers)

    monkeypatch.setattr(carrier, "track", track)
    limit = 5
    per_round = math.ceil(len(numbers) / limit)
    for round_ in range(1, 4):
        for _ in range(per_round):
            shipping.shipments_sync(limit=limit)
        assert min(asked[t] for t in numbers) == round_, f"round {round_}: {asked}"
        assert max(asked.values()) <= round_ + 1


def test_closed_shipments_are_not_polled(slow_carrier: None) -> None:
    numbers = open_shipments(3, prefix="CL")
    Shipment.objects.filter(tracking_number=numbers[0]).update(status=ShipmentStatus.DELIVERED)
    Shipment.objects.filter(tracking_number=numbers[1]).update(status=ShipmentStatus.CANCELLED)
    assert set(shipping.shipments_due(limit=10)) == {numbers[2]}
