"""Shipments: buy a label once the order's money is captured, follow the carrier's tracking."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from orders.payments.selectors import payment_is_captured
from shipping import carrier
from shipping.models import Shipment, ShipmentStatus
from shop.pipeline.messaging import already_processed, claim_message
from shop.pipeline.outbox import emit
from shop.pipeline.rows import locked_row

log = logging.getLogger("shipping")
S = ShipmentStatus
# Carrier status -> (the statuses it may move a shipment from, the new status, the event)
PROGRESS = {
    "in_transit": ((S.CREATED,), S.IN_TRANSIT, "shipment.in_transit", "In transit with the carrier"),
    "delivered": ((S.CREATED, S.IN_TRANSIT), S.DELIVERED, "shipment.delivered", "Delivered by the carrier"),
}
# A carrier's tracking is a history of scans: a parcel first seen as delivered was in transit before.
SCANS = {"in_transit": ("in_transit",), "delivered": ("in_transit", "delivered")}
OPEN = (S.CREATED, S.IN_TRANSIT)  # on their way: the carrier poll follows them
POLL_BATCH = 200  # parcels per carrier poll (one tracking request)


def _locked(order_id: str, address: dict | None = None) -> Shipment:
    """The order's shipment, locked; created (pending) on first sight, by the label or a cancellation.
    The label's first look (with the address) nearly always sees it first: it inserts first."""
    return locked_row(
        Shipment, lambda: Shipment(order_id=order_id, address=address or {}), insert_first=address is not None, order_id=order_id
    )


def shipment_create(*, event_id: str, order_id: str, payload: dict[str, Any], handler: str) -> None:
    """Buy the label for a captured payment (on ``payment.captured``); never a parcel for money not taken.

    The check is the payment's own state, not the event: a replayed or stale message for a
    payment that was declined, voided or is being refunded buys nothing.
    """
    if already_processed(event_id, handler):
        return
    with transaction.atomic():
        if not payment_is_captured(order_id):
            log.warning("order %s: payment not captured; no label bought (message %s)", order_id, event_id)
            claim_message(event_id, handler)
            return
        shipment = _locked(order_id, payload.get("address") or {})
        if shipment.status != S.PENDING:
            claim_message(event_id, handler)
            return
    tracking = carrier.create_label(key=f"label-{order_id}", address=shipment.address)
    with transaction.atomic():
        shipment = _locked(order_id)
        if shipment.status == S.PENDING:
            shipment.status = S.CREATED
            shipment.tracking_number = tracking
            shipment.save(update_fields=["status", "tracking_number", "updated_at"])
            emit(
                "shipment.created",
                order_id=order_id,
                payload={"tracking_number": tracking, "carrier": shipment.carrier},
                message=f"Label created with {shipment.carrier}: {tracking}",
            )
        elif shipment.status == S.CANCELLED:
            carrier.cancel_label(tracking_number=tracking)
        claim_message(event_id, handler)


def shipment_cancel(*, event_id: str, order_id: str, handler: str) -> None:
    """Compensation: an order cancelled before its parcel left needs no parcel."""
    with transaction.atomic():
        if not claim_message(event_id, handler):
            return
        shipment = _locked(order_id)
        if shipment.status in (S.PENDING, S.CREATED):
            if shipment.tracking_number:
                carrier.cancel_label(tracking_number=shipment.tracking_number)
                emit("shipment.cancelled", order_id=order_id, message="Shipment cancelled")
            shipment.status = S.CANCELLED
            shipment.save(update_fields=["status", "updated_at"])


def shipments_due(*, limit: int, repoll_after: float = 0.0) -> dict[str, str]:
    """Lease the ``limit`` open shipments due longest (tracking number -> order id).

    Their next poll moves ``repoll_after`` seconds past now, behind every other
    open shipment that is already due: with N open and ``limit`` per poll, each is
    polled at least once every ceil(N / limit) polls. ``SKIP LOCKED`` lets two
    overlapping polls take different shipments.
    """
    now = timezone.now()
    with transaction.atomic():
        due = list(
            Shipment.objects.select_for_update(skip_locked=True)
            .filter(status__in=OPEN, next_poll_at__lte=now)
            .order_by("next_poll_at", "id")
            .values_list("pk", "tracking_number", "order_id")[:limit]
        )
        Shipment.objects.filter(pk__in=[pk for pk, _, _ in due]).update(next_poll_at=now + timedelta(seconds=repoll_after))
    return {tracking: order_id for _, tracking, order_id in due}


def shipments_sync(limit: int = POLL_BATCH) -> int:
    """Ask the carrier about the parcels due a poll; record each change once (conditional update)."""
    open_ = shipments_due(limit=limit)
    changed = 0
    for update in carrier.track(list(open_)):
        for scan in SCANS.get(update.status, ()):
            sources, target, kind, text = PROGRESS[scan]
            with transaction.atomic():
                moved = Shipment.objects.filter(tracking_number=update.tracking_number, status__in=sources).update(status=target)
                if moved:
                    order_id = open_[update.tracking_number]
                    emit(kind, order_id=order_id, payload={"tracking_number": update.tracking_number}, message=text)
                    changed += 1
    return changed
