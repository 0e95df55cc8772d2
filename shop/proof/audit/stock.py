"""Stock: never negative, and conserved against records written apart from the counters.

The counters of a SKU (available, reserved, shipped) are written together in one
row, so comparing them with each other proves little. They are checked against the
holds ledger (each order's held or committed units), the order's own lines, and the
carrier's parcels. Tables: inventory_stockitem, inventory_stockhold, orders_orderline,
shipping_carrierparcel.
"""

from __future__ import annotations

from inventory.models import HoldStatus, StockHold, StockItem
from orders.models import OrderLine, OrderStatus
from shop.pipeline.models import OutboxEvent, ProcessedMessage
from shop.proof.audit.base import Context, Report, rows


def _ledger_units() -> dict[tuple[str, str], int]:
    """(sku, hold status) -> units, summed over the holds ledger."""
    return {
        (sku, status): int(units)
        for sku, status, units in rows(
            "SELECT line->>'sku', h.status, sum((line->>'quantity')::int) FROM inventory_stockhold h "
            "CROSS JOIN LATERAL jsonb_array_elements(h.lines) line WHERE h.status IN (%s, %s) GROUP BY 1, 2",
            [HoldStatus.HELD, HoldStatus.COMMITTED],
        )
    }


def stock_conserved(ctx: Context, report: Report) -> None:
    """Per SKU: reserved = units held, shipped = units committed, received - available = both."""
    units = _ledger_units()
    items = {item.sku: item for item in StockItem.objects.all()}
    for sku in sorted({sku for sku, _ in units} - set(items)):
        report.bad("stock-not-conserved", "", f"{sku}: units held or committed for a SKU with no stock record")
    for sku, item in items.items():
        held, committed = units.get((sku, HoldStatus.HELD), 0), units.get((sku, HoldStatus.COMMITTED), 0)
        if min(item.available, item.reserved, item.shipped) < 0:
            report.bad("negative-stock", "", f"{sku}: {item.available}/{item.reserved}/{item.shipped}")
        if item.reserved != held:
            report.bad("reservations-mismatch", "", f"{sku}: stock reserved {item.reserved} != units held by orders {held}")
        if item.shipped != committed:
            report.bad("shipped-mismatch", "", f"{sku}: stock shipped {item.shipped} != units committed to shipments {committed}")
        if item.received - item.available != held + committed:
            report.bad(
                "stock-not-conserved",
                "",
                f"{sku}: received {item.received} - available {item.available} != held {held} + committed {committed}",
            )


def holds_as_ordered(ctx: Context, report: Report) -> None:
    """A hold takes exactly the units of the order's lines, no more, no fewer."""
    holds = {
        h.order_id: {li["sku"]: int(li["quantity"]) for li in h.lines}
        for h in StockHold.objects.filter(status__in=[HoldStatus.HELD, HoldStatus.COMMITTED])
    }
    ordered: dict[str, dict[str, int]] = {}
    for order_id, sku, quantity in OrderLine.objects.filter(order__public_id__in=list(holds)).values_list(
        "order__public_id", "sku", "quantity"
    ):
        ordered.setdefault(order_id, {})[sku] = quantity
    for order_id, lines in holds.items():
        if lines != ordered.get(order_id, {}):
            report.bad("hold-not-as-ordered", order_id, f"holds {lines}, the order has {ordered.get(order_id, {})}")


# The event whose handler ends a finished order's hold: commit_stock on shipment.created for a
# delivered order, release_stock on order.cancelled for a cancelled one (shop/pipeline/events.py).
ENDS_HOLD: dict[str, tuple[str, str]] = {
    OrderStatus.DELIVERED: ("shipment.created", "inventory.tasks.commit_stock"),
    OrderStatus.CANCELLED: ("order.cancelled", "inventory.tasks.release_stock"),
}


def holds_leaked(ctx: Context, report: Report) -> None:
    """A delivered or cancelled order whose stock is still held, once the event that ends the hold
    was handled, or has waited past the deadline, or never was written. Before that the hold is
    in flight: in a backlog the carrier can deliver an order while its commit still waits in the
    inventory queue, behind the reservations of the orders placed since (one FIFO queue)."""
    finished = {
        order_id: status
        for order_id in StockHold.objects.filter(status=HoldStatus.HELD).values_list("order_id", flat=True)
        if (status := ctx.statuses.get(order_id)) in ENDS_HOLD
    }
    kinds = [kind for kind, _ in ENDS_HOLD.values()]
    events = {
        (order_id, kind): (str(event_id), created_at)
        for order_id, kind, event_id, created_at in OutboxEvent.objects.filter(
            order_id__in=list(finished), kind__in=kinds, target_task=""
        ).values_list("order_id", "kind", "event_id", "created_at")
    }
    handled = {
        (str(m), h)
        for m, h in ProcessedMessage.objects.filter(
            message_id__in=[e for e, _ in events.values()], handler__in=[h for _, h in ENDS_HOLD.values()]
        ).values_list("message_id", "handler")
    }
    for order_id, status in finished.items():
        kind, handler = ENDS_HOLD[status]
        event = events.get((order_id, kind))
        if event is None or (event[0], handler) in handled or event[1] < ctx.stale:
            report.bad("stock-hold-leaked", order_id, f"stock still held for a {status} order")


def stock_follows_parcels(ctx: Context, report: Report) -> None:
    """Quiet only. Units left with a delivered parcel are committed, never released back to
    sale; units counted as shipped have a parcel the carrier did not cancel."""
    holds = dict(StockHold.objects.values_list("order_id", "status"))
    live = {p.order_id for p in ctx.parcels if p.status != "cancelled"}
    for parcel in ctx.parcels:
        status = holds.get(parcel.order_id)
        if parcel.status == "delivered" and status == HoldStatus.RELEASED:
            report.bad("delivered-units-released", parcel.order_id, f"parcel {parcel.tracking_number} delivered, units released")
        elif parcel.status == "delivered" and status != HoldStatus.COMMITTED:
            report.bad("delivered-units-not-committed", parcel.order_id, f"parcel delivered, stock hold {status or 'missing'}")
    for order_id, status in holds.items():
        if status == HoldStatus.COMMITTED and order_id not in live:
            report.bad("shipped-without-parcel", order_id, "units committed as shipped, no live parcel at the carrier")
