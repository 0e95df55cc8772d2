"""Customer emails: at most one per order and kind, and none lost to a mail server outage.

Claim, send, settle (the states are on ``SentEmail``). The claim commits before
the SMTP call, so a duplicate delivery finds it; how the send ended decides
what happens next: sent, back to pending for a retry (the server never took
it), or in doubt (it may have). Only an email in doubt waits for staff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.models import EmailKind, SentEmail
from notifications.smtp import NotTaken, OutcomeUnknown
from orders.selectors import order_contact
from shop.pipeline.errors import PermanentError, TransientError
from shop.pipeline.messaging import already_processed, claim_message
from shop.pipeline.outbox import emit

log = logging.getLogger("notifications")
Status = SentEmail.Status

KIND_FOR_EVENT = {
    "order.placed": EmailKind.RECEIVED,
    "shipment.created": EmailKind.SHIPPED,
    "order.cancelled": EmailKind.CANCELLED,
}
SUBJECTS = {
    EmailKind.RECEIVED: "We have your order",
    EmailKind.SHIPPED: "Your order is on its way",
    EmailKind.CANCELLED: "Your order was cancelled",
}


class EmailNotTaken(TransientError):
    """The mail server never took the email (down, busy, 4xx): retried with backoff."""


class EmailRefused(PermanentError):
    """The mail server refused the email for good (5xx): parked; a replay tries again."""


class EmailBeingSent(TransientError):
    """Another delivery holds a fresh claim on this email: look again later."""

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class EmailNotInDoubt(ValueError):
    """Only an email in doubt may be re-sent by staff."""


@dataclass(frozen=True)
class Claim:
    """The right to send one email once: ``attempt`` tells this claim from any later one.

    It carries the row as claimed, so the send and its record read nothing back."""

    pk: int
    attempt: int
    email: SentEmail


def email_send(*, event_id: str, event: str, order_id: str, payload: dict[str, Any], handler: str) -> None:
    """The pipeline step: send the order's email for this event, unless it was already settled."""
    kind = KIND_FOR_EVENT[event]
    if already_processed(event_id, handler):
        return
    contact = order_contact(order_id)
    if contact is None:
        raise ValueError(f"no order {order_id} to email about")
    to, name = contact
    body = render_to_string(
        f"notifications/{kind}.txt",
        {"name": name, "order_id": order_id, "payload": payload, "order_url": f"{settings.SITE_URL}/orders/{order_id}"},
    )
    draft = SentEmail(order_id=order_id, kind=kind, to=to, subject=f"{SUBJECTS[kind]} ({order_id[:8]})", body=body)
    claim = _claim(draft, event_id=event_id, handler=handler)
    if claim is None:
        return
    try:
        _deliver(claim)
    except NotTaken as exc:
        _settle(claim, Status.FAILED if exc.permanent else Status.PENDING, error=str(exc))
        if exc.permanent:
            raise EmailRefused(str(exc)) from exc
        raise EmailNotTaken(str(exc)) from exc
    except OutcomeUnknown as exc:
        log.warning("email %s for order %s may or may not have gone out: in doubt (%s)", kind, order_id, exc)
        with transaction.atomic():
            _settle(claim, Status.IN_DOUBT, error=str(exc))
            claim_message(event_id, handler)
        return
    with transaction.atomic():
        _record_sent(claim, text=f"Email sent: {SUBJECTS[kind].lower()}")
        claim_message(event_id, handler)


def _claim(draft: SentEmail, *, event_id: str, handler: str) -> Claim | None:
    """Take the claim (pending or failed -> sending), or settle this delivery without sending."""
    with transaction.atomic():
        SentEmail.objects.bulk_create([draft], ignore_conflicts=True)
        row = SentEmail.objects.select_for_update().get(order_id=draft.order_id, kind=draft.kind)
        if row.status == Status.SENDING:
            age = (timezone.now() - row.claimed_at).total_seconds()
            if age < settings.EMAIL_CLAIM_SECONDS:
                raise EmailBeingSent(
                    f"email {row.kind} for order {row.order_id} is being sent (claimed {age:.0f}s ago)",
                    retry_in=settings.EMAIL_CLAIM_SECONDS - age,
                )
            row.status = Status.IN_DOUBT
            row.last_error = f"claimed {age:.0f}s ago and never settled: the sender stopped mid-send"
            row.save(update_fields=["status", "last_error"])
            log.warning("email %s for order %s is in doubt: %s", row.kind, row.order_id, row.last_error)
        if row.status in (Status.SENT, Status.IN_DOUBT):
            claim_message(event_id, handler)
            return None
        row.status, row.attempts, row.claimed_at = Status.SENDING, row.attempts + 1, timezone.now()
        row.body = row.body or draft.body  # a row claimed before bodies were stored
        row.save(update_fields=["status", "attempts", "claimed_at", "body"])
        return Claim(row.pk, row.attempts, row)


def _deliver(claim: Claim) -> None:
    """One SMTP transaction; raises ``NotTaken`` or ``OutcomeUnknown`` when it did not end in "250"."""
    row = claim.email
    message = EmailMessage(
        row.subject,
        row.body,
        to=[row.to],
        headers={"Message-ID": f"<{row.order_id}.{row.kind}@shop>", "X-Order-Id": row.order_id, "X-Email-Kind": row.kind},
    )
    if message.send() != 1:
        raise NotTaken("the mail backend sent nothing", permanent=True)


def _settle(claim: Claim, status: str, *, error: str) -> None:
    """Record how this claim's send ended, unless a later claim (a staff re-send) took over."""
    updated = SentEmail.objects.filter(pk=claim.pk, attempts=claim.attempt, status__in=[Status.SENDING, Status.IN_DOUBT]).update(
        status=status, last_error=error[:2000]
    )
    if not updated:
        log.warning("email %s: attempt %d ended (%s) after a later claim took over", claim.pk, claim.attempt, status)


def _record_sent(claim: Claim, *, text: str, payload: dict[str, Any] | None = None) -> None:
    """The server accepted it: sent (even if meanwhile declared in doubt: this is the evidence).

    One conditional UPDATE decides, as ``_settle`` does: the row still holds this claim's
    attempt, sending or in doubt, or a later claim took over and this one records nothing."""
    sent = SentEmail.objects.filter(pk=claim.pk, attempts=claim.attempt, status__in=[Status.SENDING, Status.IN_DOUBT]).update(
        status=Status.SENT, sent_at=timezone.now(), last_error=""
    )
    if not sent:
        log.warning("email %s: attempt %d was accepted after a later claim took over", claim.pk, claim.attempt)
        return
    row = claim.email
    emit("email.sent", order_id=row.order_id, payload={"kind": row.kind, **(payload or {})}, message=text)


def emails_in_doubt() -> QuerySet[SentEmail]:
    """What staff must look at: emails in doubt, and claims too old to be a live send."""
    stale = timezone.now() - timedelta(seconds=settings.EMAIL_CLAIM_SECONDS)
    return SentEmail.objects.filter(Q(status=Status.IN_DOUBT) | Q(status=Status.SENDING, claimed_at__lt=stale))


def email_resend(*, email_id: int, staff: str) -> SentEmail:
    """Staff re-send an email in doubt (the one exception to "one email per order and kind").

    Recorded on the row (who, when, how many). A refusal or another unknown
    outcome leaves it in doubt, with the error, for staff to try again.
    """
    with transaction.atomic():
        row = emails_in_doubt().select_for_update().filter(pk=email_id).first()
        if row is None:
            raise EmailNotInDoubt(f"email {email_id} is not in doubt: only an email in doubt can be re-sent")
        row.status, row.attempts, row.claimed_at = Status.SENDING, row.attempts + 1, timezone.now()
        row.resends, row.resent_by, row.resent_at = row.resends + 1, staff[:150], timezone.now()
        row.save(update_fields=["status", "attempts", "claimed_at", "resends", "resent_by", "resent_at"])
        claim = Claim(row.pk, row.attempts, row)
    try:
        _deliver(claim)
    except (NotTaken, OutcomeUnknown) as exc:
        _settle(claim, Status.IN_DOUBT, error=f"re-send failed: {exc}")
    else:
        with transaction.atomic():
            _record_sent(claim, text=f"Email sent again: {SUBJECTS[row.kind].lower()}", payload={"resent": True})
    return SentEmail.objects.get(pk=email_id)
