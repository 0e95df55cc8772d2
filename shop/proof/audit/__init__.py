"""The invariant checker: what must hold, read from the database and from the
simulated gateway's and carrier's own ledgers.

``manage.py audit`` prints each violation with the order it concerns and exits
non-zero; the fault tests and the chaos runner call ``run()``.

Each rule is a small function of one group (a module each). Some rules hold at
every instant (no double charge, stock conserved). Others compare one step's
records with another's (every event processed by every subscriber, every email
sent, no parcel for a cancelled order); a step still in flight would look like
a violation, so they run only when the pipeline is quiet: nothing unpublished
or claimed in the outbox, and no event newer than ``grace_seconds``. A run that
skipped them says so (a ``pipeline-busy`` warning, ``stats["quiet"] == 0``).
"""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from orders.models import OrderStatus
from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.proof.audit import carrier, emails, lifecycle, messages, money, stock
from shop.proof.audit.base import Context, Finding, Report, Rule, pipeline_quiet

__all__ = ["ALWAYS", "WHEN_QUIET", "Finding", "Report", "run"]

ALWAYS: tuple[Rule, ...] = (
    lifecycle.lost_orders,
    lifecycle.stuck_orders,
    lifecycle.lost_placed_events,
    lifecycle.reviews_past_deadline,
    money.double_operations,
    money.money_left_behind,
    money.delivered_not_charged,
    emails.duplicate_emails,
    emails.emails_in_doubt,
    stock.stock_conserved,
    stock.holds_as_ordered,
    stock.holds_leaked,
    messages.outbox_stuck,
    messages.dead_letters,
)
WHEN_QUIET: tuple[Rule, ...] = (
    messages.unprocessed_events,
    messages.unfinished_replays,
    messages.unfinished_redrives,
    emails.emails_missing,
    carrier.parcels_for_ended_orders,
    stock.stock_follows_parcels,
)


def run(
    *,
    deadline_seconds: float = 120,
    expected_orders: list[str] | None = None,
    allowed_dead_letters: int = 0,
    grace_seconds: float = 5.0,
    quiet: bool | None = None,
) -> Report:
    """Check every invariant. ``quiet=None`` looks whether the pipeline is quiet; True or
    False says so (a caller that stopped every process, or one that knows it is busy).

    Every table is read in one repeatable-read snapshot: while the pipeline runs, an order
    read as placed could otherwise show, a read later, the capture it got in between. (Inside a
    caller's transaction, such as a test's, its isolation level is the caller's.)"""
    if connection.in_atomic_block:
        return _run(deadline_seconds, expected_orders, allowed_dead_letters, grace_seconds, quiet)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return _run(deadline_seconds, expected_orders, allowed_dead_letters, grace_seconds, quiet)


def _run(
    deadline_seconds: float,
    expected_orders: list[str] | None,
    allowed_dead_letters: int,
    grace_seconds: float,
    quiet: bool | None,
) -> Report:
    now = timezone.now()
    ctx = Context(
        now=now,
        deadline_seconds=deadline_seconds,
        grace_seconds=grace_seconds,
        expected_orders=expected_orders,
        allowed_dead_letters=allowed_dead_letters,
        quiet=pipeline_quiet(now, grace_seconds) if quiet is None else quiet,
    )
    report = Report()
    for rule in ALWAYS:
        rule(ctx, report)
    if ctx.quiet:
        for rule in WHEN_QUIET:
            rule(ctx, report)
    else:
        skipped = ", ".join(rule.__name__ for rule in WHEN_QUIET)
        report.warn("pipeline-busy", "", f"events in flight or newer than {grace_seconds:g} s: not checked: {skipped}")
    report.stats = _stats(ctx)
    return report


def _stats(ctx: Context) -> dict[str, int]:
    statuses = ctx.statuses.values()
    return {
        "orders": len(ctx.statuses),
        "delivered": sum(1 for s in statuses if s == OrderStatus.DELIVERED),
        "cancelled": sum(1 for s in statuses if s == OrderStatus.CANCELLED),
        "open": sum(1 for s in statuses if s not in (OrderStatus.DELIVERED, OrderStatus.CANCELLED)),
        "in_review": sum(1 for s in statuses if s == OrderStatus.REVIEW),
        "charges": sum(1 for done in ctx.gateway_ops.values() if "capture" in done),
        "dead_letters": DeadLetter.objects.filter(status=DeadLetter.Status.PARKED).count(),
        "outbox_unpublished": OutboxEvent.objects.filter(published_at__isnull=True).count(),
        "quiet": int(ctx.quiet),
    }
