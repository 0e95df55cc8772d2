"""Read-only questions about the demo mailbox, for the storefront's mailbox page."""

from __future__ import annotations

from django.conf import settings

from notifications.mailers import MAILBOX_BACKEND
from notifications.models import MailboxMessage


def mailbox_in_use() -> bool:
    """True when emails land in the stored mailbox (no SMTP configured, or ``EMAIL_URL=mailbox://``).

    Only then may the shop show a customer's emails on a page: with a real mail server they
    went to the customer's inbox, and the shop keeps no copy to show."""
    return settings.MAILERS.get("default", {}).get("BACKEND") == MAILBOX_BACKEND


def mailbox_for_order(public_id: str) -> list[MailboxMessage]:
    """The emails delivered for one order, oldest first (a staff re-send shows as a second copy)."""
    return list(MailboxMessage.objects.filter(order_id=public_id).order_by("delivered_at", "id"))
