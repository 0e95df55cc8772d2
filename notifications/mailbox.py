"""An email backend that delivers into a table, so the demo has a mailbox to look at
(and the audit has a sink to count duplicates in)."""

from __future__ import annotations

from django.core.mail.backends.base import BaseEmailBackend


class MailboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        from notifications.models import MailboxMessage

        for message in email_messages:
            MailboxMessage.objects.create(
                message_id=message.extra_headers.get("Message-ID", ""),
                to=", ".join(message.to),
                subject=message.subject,
                body=message.body,
                order_id=message.extra_headers.get("X-Order-Id", ""),
                kind=message.extra_headers.get("X-Email-Kind", ""),
            )
        return len(email_messages)
