"""What every rule shares: findings, the report, and the context of one run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from django.db import connection


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

    def bad(self, check: str, order_id: str, detail: str) -> None:
        self.violations.append(Finding(check, order_id, detail))

    def warn(self, check: str, order_id: str, detail: str) -> None:
        self.warnings.append(Finding(check, order_id, detail))

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "stats": self.stats,
            "violations": [f.__dict__ for f in self.violations],
            "warnings": [f.__dict__ for f in self.warnings],
        }


@dataclass
class Context:
    """One run's clock and thresholds, and the facts several rules read (loaded once)."""

    now: datetime
    deadline_seconds: float
    grace_seconds: float
    expected_orders: list[str] | None
    allowed_dead_letters: int
    quiet: bool = False

    @property
    def stale(self) -> datetime:
        """Older than this, an open order or an unpublished event has stopped moving."""
        return self.now - timedelta(seconds=self.deadline_seconds)

    @property
    def settled(self) -> datetime:
        """Older than this, an event has had its grace period to be processed."""
        return self.now - timedelta(seconds=self.grace_seconds)

    @cached_property
    def statuses(self) -> dict[str, str]:
        from orders.models import Order

        return dict(Order.objects.values_list("public_id", "status"))

    @cached_property
    def gateway_ops(self) -> dict[str, set[str]]:
        """The gateway's own ledger: the approved operations per order (authorize, capture, void, refund)."""
        ops: dict[str, set[str]] = {}
        for reference, op in rows("SELECT reference, operation FROM payments_gatewaytransaction WHERE approved"):
            ops.setdefault(reference, set()).add(op)
        return ops

    @cached_property
    def parcels(self) -> list:
        from shop.proof.audit.parcels import carrier_parcels

        return carrier_parcels()


Rule = Callable[[Context, Report], None]


def rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params or [])
        return cur.fetchall()


def pipeline_quiet(now: datetime, grace_seconds: float) -> bool:
    """No event waits for the relay (unpublished or claimed), none was written or published
    within the grace period, and no handler finished a message within it: nothing is moving.
    The last matters in a backlog, where workers can spend minutes on messages whose handlers
    write no event (stock commits, emails). The rules that compare one step's records with
    another's run only then."""
    from shop.pipeline.models import OutboxEvent, ProcessedMessage

    recent = now - timedelta(seconds=grace_seconds)
    if OutboxEvent.objects.filter(published_at__isnull=True, parked_at__isnull=True).exists():
        return False
    return not (
        OutboxEvent.objects.filter(published_at__gte=recent).exists()
        or OutboxEvent.objects.filter(created_at__gte=recent).exists()
        or ProcessedMessage.objects.filter(processed_at__gte=recent).exists()
    )
