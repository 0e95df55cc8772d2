"""An SMTP backend that says what became of a message it could not send.

Plain SMTP has no idempotency key, so whether a failed send may be retried
depends on how far it got:

- before the server answered ``354`` to ``DATA`` (connection refused, a timeout
  or a ``4xx``/``5xx`` reply to the greeting, ``MAIL FROM`` or ``RCPT TO``), the
  server never had the message: ``NotTaken``, safe to send again;
- a ``4xx``/``5xx`` reply to the end of the content is a refusal too;
- once the content was on its way, a lost connection or a timeout before the
  final reply leaves the outcome unknown: ``OutcomeUnknown``, never retried.

A failure while saying ``QUIT`` after the server accepted the message changes
nothing: the message was delivered.
"""

from __future__ import annotations

import logging
import smtplib

from django.core.mail import EmailMessage
from django.core.mail.backends import smtp

log = logging.getLogger("notifications")


class NotTaken(Exception):
    """The server never took the message; ``permanent`` when it said so with a 5xx."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class OutcomeUnknown(Exception):
    """The content was sent and no answer came: the server may have accepted it."""


class _Tracked:
    """Remembers whether the message content left for the server (after ``354``)."""

    content_sent = False
    _last_command = ""

    def putcmd(self, cmd: str, args: str = "") -> None:
        self._last_command = cmd.lower()
        super().putcmd(cmd, args)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        code, text = super().getreply()  # type: ignore[misc]
        if self._last_command == "data" and code == 354:
            self.content_sent = True  # smtplib sends the content next; from here the outcome can be unknown
        return code, text


class _TrackedSMTP(_Tracked, smtplib.SMTP):
    pass


class _TrackedSMTPSSL(_Tracked, smtplib.SMTP_SSL):
    pass


def _reply_code(exc: BaseException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return max(codes) if codes else None
    code = getattr(exc, "smtp_code", None)
    return code if isinstance(code, int) and code > 0 else None


def classify(exc: BaseException, *, content_sent: bool) -> NotTaken | OutcomeUnknown:
    """A reply code is an answer (refused); silence after the content is not."""
    code = _reply_code(exc)
    if code is None and content_sent:
        return OutcomeUnknown(f"no reply after the message content: {exc!r}")
    return NotTaken(f"refused by the mail server: {exc!r}", permanent=code is not None and code >= 500)


class EmailBackend(smtp.EmailBackend):
    """Django's SMTP backend, raising ``NotTaken`` or ``OutcomeUnknown`` instead of socket errors."""

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        return _TrackedSMTPSSL if self.use_ssl else _TrackedSMTP

    def open(self) -> bool | None:
        try:
            return super().open()
        except OSError as exc:  # refused, unreachable, timeout, bad greeting or login: nothing was sent
            raise NotTaken(f"could not connect to the mail server: {exc!r}") from exc

    def _send(self, email_message: EmailMessage) -> bool:
        if self.connection is not None:
            self.connection.content_sent = False  # per message, on a reused connection too
        try:
            return super()._send(email_message)
        except ValueError as exc:  # an address Django refuses to put on the wire
            raise NotTaken(f"invalid address: {exc}", permanent=True) from exc
        except OSError as exc:  # smtplib's errors are OSErrors, and so are socket timeouts
            raise classify(exc, content_sent=getattr(self.connection, "content_sent", False)) from exc

    def close(self) -> None:
        """Closing cannot undo a delivery: a failing ``QUIT`` is logged, not raised."""
        try:
            super().close()
        except OSError as exc:
            log.warning("closing the SMTP connection failed: %r", exc)
            self.connection = None
            self._partial_connection = None
