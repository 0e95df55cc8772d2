"""Stock: reserve with a conditional update, release on cancellation, commit on shipment.

``UPDATE ... SET available = available - q WHERE sku = s AND available >= q``
is safe under READ COMMITTED: a concurrent updater waits for the row and
re-checks the condition against the new version, so of N orders for the last
K units exactly K get them. SKUs are taken in sorted order to avoid deadlocks.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from inventory.models import HoldStatus, StockHold, StockItem
from shop.pipeline.messaging import claim_message
from shop.pipeline.outbox import emit
from shop.pipeline.rows import locked_row


class OutOfStock(Exception):
    def __init__(self, sku: str) -> None:
        super().__init__(sku)
        self.sku = sku


def _hold(order_id: str, *, first_sight: bool = False) -> StockHold:
    """The order's hold, locked; created (pending) by whichever of reserve and release comes first.
    The reservation nearly always sees the order first (``first_sight``): it inserts first."""
    return locked_row(StockHold, lambda: StockHold(order_id=order_id), insert_first=first_sight, order_id=order_id)


def _take(wanted: list[tuple[str, int]]) -> None:
    """Reserve every line or none: a line out of stock gives back the lines taken before it.

    In the caller's transaction, so no one sees the lines taken and given back (their rows stay
    locked until it commits); cheaper than a savepoint around the loop, which costs two
    statements on every reservation where this costs some only when a line is missing."""
    taken: list[tuple[str, int]] = []
    for sku, quantity in wanted:
        moved = StockItem.objects.filter(sku=sku, available__gte=quantity).update(
            available=F("available") - quantity, reserved=F("reserved") + quantity
        )
        if moved != 1:
            for done, q in taken:
                StockItem.objects.filter(sku=done).update(available=F("available") + q, reserved=F("reserved") - q)
            raise OutOfStock(sku)
        taken.append((sku, quantity))


def _merged(lines: list[dict[str, Any]]) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for line in lines:
        totals[line["sku"]] = totals.get(line["sku"], 0) + int(line["quantity"])
    return sorted(totals.items())


def stock_reserve(*, event_id: str, order_id: str, lines: list[dict[str, Any]], handler: str) -> None:
    with transaction.atomic():
        if not claim_message(event_id, handler):
            return
        hold = _hold(order_id, first_sight=True)
        if hold.status != HoldStatus.PENDING:
            return  # already decided, or released before we got here
        wanted = _merged(lines)
        try:
            _take(wanted)
        except OutOfStock as exc:
            hold.status = HoldStatus.UNAVAILABLE
            hold.save(update_fields=["status", "updated_at"])
            emit(
                "stock.unavailable",
                order_id=order_id,
                payload={"sku": exc.sku, "reason": f"out of stock: {exc.sku}"},
                message=f"Out of stock: {exc.sku}",
            )
            return
        hold.status = HoldStatus.HELD
        hold.lines = [{"sku": s, "quantity": q} for s, q in wanted]
        hold.save(update_fields=["status", "lines", "updated_at"])
        emit(
            "stock.reserved",
            order_id=order_id,
            payload={"lines": hold.lines},
            message=f"Stock reserved: {', '.join(f'{q} x {s}' for s, q in wanted)}",
        )


def stock_release(*, event_id: str, order_id: str, handler: str) -> None:
    """Compensation: give reserved stock back. Before any reservation, leave a tombstone."""
    with transaction.atomic():
        if not claim_message(event_id, handler):
            return
        hold = _hold(order_id)
        if hold.status == HoldStatus.HELD:
            for line in sorted(hold.lines, key=lambda li: li["sku"]):
                StockItem.objects.filter(sku=line["sku"]).update(
                    available=F("available") + line["quantity"], reserved=F("reserved") - line["quantity"]
                )
            emit("stock.released", order_id=order_id, message="Reserved stock released")
        if hold.status in (HoldStatus.PENDING, HoldStatus.HELD, HoldStatus.UNAVAILABLE):
            hold.status = HoldStatus.RELEASED
            hold.save(update_fields=["status", "updated_at"])


def stock_commit(*, event_id: str, order_id: str, handler: str) -> None:
    """The parcel left: reserved units become shipped units."""
    with transaction.atomic():
        if not claim_message(event_id, handler):
            return
        hold = _hold(order_id)
        if hold.status != HoldStatus.HELD:
            return
        for line in sorted(hold.lines, key=lambda li: li["sku"]):
            StockItem.objects.filter(sku=line["sku"]).update(
                reserved=F("reserved") - line["quantity"], shipped=F("shipped") + line["quantity"]
            )
        hold.status = HoldStatus.COMMITTED
        hold.save(update_fields=["status", "updated_at"])
        emit("stock.committed", order_id=order_id, message="Stock committed to the shipment")


def stock_receive(*, sku: str, quantity: int) -> StockItem:
    """Goods in: add to the available stock (used by the catalog seed and staff)."""
    with transaction.atomic():
        StockItem.objects.bulk_create([StockItem(sku=sku)], ignore_conflicts=True)
        StockItem.objects.filter(sku=sku).update(available=F("available") + quantity, received=F("received") + quantity)
        return StockItem.objects.get(sku=sku)
