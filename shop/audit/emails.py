"""Emails: at most one per order and kind, and none missing once the pipeline is quiet.

Tables: notifications_mailboxmessage (the mailbox backend's sink), notifications_sentemail
(the claim-then-send record), shop_outboxevent (order.placed), orders_order, shop_deadletter.
"""

from __future__ import annotations

from notifications.models import EmailKind, MailboxMessage, SentEmail
from orders.models import OrderStatus
from shop.audit.base import Context, Report, rows
from shop.models import DeadLetter, OutboxEvent

EMAIL_TASK = "notifications.tasks.send_order_email"
# The email a terminal order's customer must have had about its outcome.
OUTCOME_EMAIL = {OrderStatus.DELIVERED: EmailKind.SHIPPED, OrderStatus.CANCELLED: EmailKind.CANCELLED}


def duplicate_emails(ctx: Context, report: Report) -> None:
    """Counted in the mailbox itself, not in our own claim records."""
    for order_id, kind, n in rows(
        "SELECT order_id, kind, count(*) FROM notifications_mailboxmessage GROUP BY order_id, kind HAVING count(*) > 1"
    ):
        report.bad("duplicate-email", order_id, f"{n} '{kind}' emails")


def emails_in_doubt(ctx: Context, report: Report) -> None:
    in_doubt = SentEmail.objects.filter(status=SentEmail.Status.SENDING, claimed_at__lt=ctx.stale)
    for order_id, kind in in_doubt.values_list("order_id", "kind"):
        report.warn("email-in-doubt", order_id, f"'{kind}' email claimed but never confirmed sent: reconcile")


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
        DeadLetter.objects.filter(task=EMAIL_TASK)
        .exclude(status=DeadLetter.Status.REPLAYED)
        .values_list("order_id", flat=True)
    )
    for order_id, kind in sorted(expected):
        status = claimed.get((order_id, kind))
        if (order_id, kind) in delivered or status in (SentEmail.Status.SENT, SentEmail.Status.SENDING) or order_id in parked:
            continue
        report.bad("email-missing", order_id, f"no '{kind}' email ({status or 'never claimed'})")


def _told_received() -> set[str]:
    """Orders whose order.placed was published: the customer was told the order was received."""
    placed = OutboxEvent.objects.filter(kind="order.placed", published_at__isnull=False)
    return set(placed.values_list("order_id", flat=True))
