"""Emails: at most one per order and kind, and none missing once the pipeline is quiet.

Tables: notifications_mailboxmessage (the mailbox backend's sink), notifications_sentemail
(the claim-then-send record), shop_outboxevent (order.placed), orders_order, shop_deadletter.
"""

from __future__ import annotations

from notifications.models import EmailKind, MailboxMessage, SentEmail
from orders.models import OrderStatus
from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.proof.audit.base import Context, Report, rows

EMAIL_TASK = "notifications.tasks.send_order_email"
# The email a terminal order's customer must have had about its outcome.
# Sent, being sent, or in doubt (reported as a warning of its own): not missing.
SETTLED_OR_IN_DOUBT = (SentEmail.Status.SENT, SentEmail.Status.SENDING, SentEmail.Status.IN_DOUBT)
OUTCOME_EMAIL = {OrderStatus.DELIVERED: EmailKind.SHIPPED, OrderStatus.CANCELLED: EmailKind.CANCELLED}


def duplicate_emails(ctx: Context, report: Report) -> None:
    """Counted in the mailbox itself, not in our own claim records; a staff re-send of an email
    in doubt (``SentEmail.resends``) is the only second copy allowed."""
    for order_id, kind, n, allowed in rows(
        """SELECT m.order_id, m.kind, count(*), 1 + coalesce(max(e.resends), 0)
             FROM notifications_mailboxmessage m
             LEFT JOIN notifications_sentemail e ON e.order_id = m.order_id AND e.kind = m.kind
            GROUP BY m.order_id, m.kind HAVING count(*) > 1 + coalesce(max(e.resends), 0)"""
    ):
        report.bad("duplicate-email", order_id, f"{n} '{kind}' emails ({allowed} allowed)")


def emails_in_doubt(ctx: Context, report: Report) -> None:
    """In doubt, or claimed long ago and never settled: staff decide whether to re-send (the admin lists them)."""
    S = SentEmail.Status
    stale_claims = SentEmail.objects.filter(status=S.SENDING, claimed_at__lt=ctx.stale)
    in_doubt = SentEmail.objects.filter(status=S.IN_DOUBT, resends=0) | stale_claims
    for order_id, kind in in_doubt.values_list("order_id", "kind"):
        report.warn("email-in-doubt", order_id, f"'{kind}' email may or may not have gone out: staff to reconcile")


def emails_missing(ctx: Context, report: Report) -> None:
    """Quiet only. Every order told "received" got that email, and every terminal order the
    email of its outcome: delivered or sent (in the mailbox, or marked sent after SMTP took it).
    One claimed but unconfirmed is in doubt (the warning above), one whose step was parked is a
    dead letter: neither is reported twice."""
    expected = {(oid, EmailKind.RECEIVED) for oid in _told_received()}
    expected |= {(oid, OUTCOME_EMAIL[s]) for oid, s in ctx.statuses.items() if s in OUTCOME_EMAIL}
    delivered = set(MailboxMessage.objects.values_list("order_id", "kind"))
    claimed = {(oid, kind): status for oid, kind, status in SentEmail.objects.values_list("order_id", "kind", "status")}
    parked = set(
        DeadLetter.objects.filter(task=EMAIL_TASK).exclude(status=DeadLetter.Status.REPLAYED).values_list("order_id", flat=True)
    )
    for order_id, kind in sorted(expected):
        status = claimed.get((order_id, kind))
        if (order_id, kind) in delivered or status in SETTLED_OR_IN_DOUBT or order_id in parked:
            continue
        report.bad("email-missing", order_id, f"no '{kind}' email ({status or 'never claimed'})")


def _told_received() -> set[str]:
    """Orders whose order.placed was published: the customer was told the order was received."""
    placed = OutboxEvent.objects.filter(kind="order.placed", published_at__isnull=False)
    return set(placed.values_list("order_id", flat=True))
