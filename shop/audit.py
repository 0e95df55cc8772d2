"""The invariant checker: what must hold, read from the database and from the
simulated gateway's and carrier's own ledgers.

``manage.py audit`` prints each violation with the order it concerns and exits
non-zero; the fault tests and the chaos runner call ``run()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from inventory.models import HoldStatus, StockHold, StockItem
from notifications.models import SentEmail
from orders.models import Order, OrderStatus
from shop.models import DeadLetter, OutboxEvent


@dataclass(frozen=True)
class Finding:
    check: str
    order_id: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: order {self.order_id or '-'}: {self.detail}"


@dataclass
class Report:
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "stats": self.stats,
            "violations": [f.__dict__ for f in self.violations],
            "warnings": [f.__dict__ for f in self.warnings],
        }


def _rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params or [])
        return cur.fetchall()


def run(*, deadline_seconds: float = 120, expected_orders: list[str] | None = None, allowed_dead_letters: int = 0) -> Report:
    report = Report()
    bad, warn = report.violations.append, report.warnings.append
    now = timezone.now()

    # 1. None lost, none stuck.
    if expected_orders is not None:
        present = set(Order.objects.filter(public_id__in=expected_orders).values_list("public_id", flat=True))
        for order_id in sorted(set(expected_orders) - present):
            bad(Finding("lost-order", order_id, "confirmed to the customer but not in the database"))
    stale = now - timedelta(seconds=deadline_seconds)
    for order_id, status, updated in Order.objects.exclude(status__in=[OrderStatus.DELIVERED, OrderStatus.CANCELLED]).values_list(
        "public_id", "status", "updated_at"
    ):
        if status == OrderStatus.REVIEW:
            warn(Finding("awaiting-review", order_id, "waits for a staff fraud decision"))
        elif updated < stale:
            bad(Finding("stuck-order", order_id, f"{status} with no progress for {int((now - updated).total_seconds())} s"))
    for (order_id,) in _rows(
        "SELECT o.public_id FROM orders_order o WHERE NOT EXISTS "
        "(SELECT 1 FROM shop_outboxevent e WHERE e.order_id = o.public_id AND e.kind = 'order.placed')"
    ):
        bad(Finding("lost-event", order_id, "order without its order.placed event"))

    # 2. Money: at most one charge, and every charge accounted for (the gateway's ledger).
    for reference, op, n in _rows(
        "SELECT reference, operation, count(*) FROM payments_gatewaytransaction WHERE approved "
        "GROUP BY reference, operation HAVING count(*) > 1"
    ):
        bad(Finding("double-" + op, reference, f"{n} approved {op} operations at the gateway"))
    ops: dict[str, set[str]] = {}
    for reference, op in _rows("SELECT reference, operation FROM payments_gatewaytransaction WHERE approved"):
        ops.setdefault(reference, set()).add(op)
    statuses = dict(Order.objects.values_list("public_id", "status"))
    for reference, done in ops.items():
        status = statuses.get(reference)
        if "capture" in done and status == OrderStatus.CANCELLED and "refund" not in done:
            bad(Finding("captured-not-refunded", reference, "cancelled order whose payment was captured and not refunded"))
        if "capture" in done and status not in (
            OrderStatus.SHIPPED,
            OrderStatus.IN_TRANSIT,
            OrderStatus.DELIVERED,
            OrderStatus.CANCELLED,
        ):
            bad(Finding("captured-not-shipped", reference, f"payment captured while the order is {status}"))
        if status == OrderStatus.CANCELLED and "authorize" in done and not done & {"void", "refund"}:
            bad(Finding("authorisation-left-open", reference, "cancelled order with an authorisation never voided"))

    for order_id, status in statuses.items():  # also orders the gateway never heard of
        if status == OrderStatus.DELIVERED and "capture" not in ops.get(order_id, set()):
            bad(Finding("delivered-not-charged", order_id, "delivered without a captured payment"))

    # 3. At most one email per order and kind, counted in the mailbox itself.
    for order_id, kind, n in _rows(
        "SELECT order_id, kind, count(*) FROM notifications_mailboxmessage GROUP BY order_id, kind HAVING count(*) > 1"
    ):
        bad(Finding("duplicate-email", order_id, f"{n} '{kind}' emails"))
    for order_id, kind in SentEmail.objects.filter(status=SentEmail.Status.SENDING, claimed_at__lt=stale).values_list(
        "order_id", "kind"
    ):
        warn(Finding("email-in-doubt", order_id, f"'{kind}' email claimed but never confirmed sent: reconcile"))

    # 4. Stock: never negative, conserved, and no hold outliving its order.
    for item in StockItem.objects.all():
        if min(item.available, item.reserved, item.shipped) < 0:
            bad(Finding("negative-stock", "", f"{item.sku}: {item.available}/{item.reserved}/{item.shipped}"))
        if item.available + item.reserved + item.shipped != item.received:
            bad(
                Finding(
                    "stock-not-conserved", "", f"{item.sku}: {item.available}+{item.reserved}+{item.shipped} != {item.received}"
                )
            )
    for hold in StockHold.objects.filter(status=HoldStatus.HELD):
        if statuses.get(hold.order_id) in (OrderStatus.CANCELLED, OrderStatus.DELIVERED):
            bad(Finding("stock-hold-leaked", hold.order_id, f"stock still held for a {statuses[hold.order_id]} order"))
    reserved = sum(q for (q,) in _rows("SELECT coalesce(sum(reserved), 0) FROM inventory_stockitem"))
    held = sum(int(line["quantity"]) for hold in StockHold.objects.filter(status=HoldStatus.HELD) for line in hold.lines)
    if reserved != held:
        bad(Finding("reservations-mismatch", "", f"stock reserved {reserved} != units held by orders {held}"))

    # 5. The outbox drains; dead letters are few and accounted for.
    for event in OutboxEvent.objects.filter(published_at__isnull=True, created_at__lt=stale):
        bad(
            Finding(
                "outbox-stuck",
                event.order_id,
                f"{event.kind} unpublished since {event.created_at:%H:%M:%S}: {event.last_error[:80]}",
            )
        )
    parked = list(DeadLetter.objects.filter(status=DeadLetter.Status.PARKED))
    for letter in parked[allowed_dead_letters:]:
        bad(Finding("dead-letter", letter.order_id, f"{letter.task}: {letter.error[:120]}"))

    report.stats = {
        "orders": len(statuses),
        "delivered": sum(1 for s in statuses.values() if s == OrderStatus.DELIVERED),
        "cancelled": sum(1 for s in statuses.values() if s == OrderStatus.CANCELLED),
        "open": sum(1 for s in statuses.values() if s not in (OrderStatus.DELIVERED, OrderStatus.CANCELLED)),
        "charges": sum(1 for done in ops.values() if "capture" in done),
        "dead_letters": len(parked),
        "outbox_unpublished": OutboxEvent.objects.filter(published_at__isnull=True).count(),
    }
    return report
