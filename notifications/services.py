"""Customer emails: at most one per order and kind (claim, send, mark)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.models import EmailKind, SentEmail
from orders.selectors import order_contact
from shop.messaging import already_processed, claim_message
from shop.outbox import emit

log = logging.getLogger("notifications")

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


def email_send(*, event_id: str, event: str, order_id: str, payload: dict[str, Any], handler: str) -> None:
    kind = KIND_FOR_EVENT[event]
    if already_processed(event_id, handler):
        return
    contact = order_contact(order_id)
    if contact is None:
        raise ValueError(f"no order {order_id} to email about")
    to, name = contact
    subject = f"{SUBJECTS[kind]} ({order_id[:8]})"
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = SentEmail.objects.create(order_id=order_id, kind=kind, to=to, subject=subject)
        except IntegrityError:  # claimed before: sent, or in doubt after a crash mid-send
            row = SentEmail.objects.get(order_id=order_id, kind=kind)
            if row.status == SentEmail.Status.SENDING:
                log.warning("email %s for order %s may or may not have gone out: left for reconciliation", kind, order_id)
            claim_message(event_id, handler)
            return
    body = render_to_string(
        f"notifications/{kind}.txt",
        {"name": name, "order_id": order_id, "payload": payload, "order_url": f"{settings.SITE_URL}/orders/{order_id}"},
    )
    EmailMessage(
        subject,
        body,
        to=[to],
        headers={"Message-ID": f"<{order_id}.{kind}@shop>", "X-Order-Id": order_id, "X-Email-Kind": kind},
    ).send()
    with transaction.atomic():
        SentEmail.objects.filter(pk=row.pk).update(status=SentEmail.Status.SENT, sent_at=timezone.now())
        emit("email.sent", order_id=order_id, payload={"kind": kind}, message=f"Email sent: {SUBJECTS[kind].lower()}")
        claim_message(event_id, handler)
