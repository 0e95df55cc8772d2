"""What the email step already did for an order, asked before a staff re-drive: one
``SentEmail`` per order and kind, claimed before the send. A sent email is never sent again
by a re-drive; one in doubt only by the staff re-send (``email_resend``)."""

from __future__ import annotations

from notifications.models import SentEmail
from notifications.services import KIND_FOR_EVENT
from shop.pipeline.redrive import register_effect_check


def email_settled(order_id: str, event: str) -> str:
    kind = KIND_FOR_EVENT.get(event)
    status = SentEmail.objects.filter(order_id=order_id, kind=kind).values_list("status", flat=True).first()
    if status == SentEmail.Status.SENT:
        return f"the {kind} email was already sent"
    if status == SentEmail.Status.IN_DOUBT:
        return f"the {kind} email is in doubt: only a staff re-send (emails admin) sends it again"
    return ""


def register() -> None:
    register_effect_check("notifications.tasks.send_order_email", email_settled)
