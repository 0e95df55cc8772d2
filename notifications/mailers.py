"""The ``MAILERS`` setting, built from one ``EMAIL_URL``.

Django 6.1 replaced ``EMAIL_BACKEND``/``EMAIL_HOST``/... with ``MAILERS``; the
old names print a deprecation warning in every process that reads them. This
module only builds a dictionary (no Django import), so settings can call it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

MAILBOX_BACKEND = "notifications.mailbox.MailboxBackend"
SMTP_BACKEND = "notifications.smtp.EmailBackend"
# The same URL schemes as django-environ's email_url, so existing EMAIL_URLs keep working.
SMTP_SCHEMES = {"smtp": {}, "smtps": {"use_tls": True}, "smtp+tls": {"use_tls": True}, "smtp+ssl": {"use_ssl": True}}
OTHER_SCHEMES = {
    "consolemail": "django.core.mail.backends.console.EmailBackend",
    "memorymail": "django.core.mail.backends.locmem.EmailBackend",
    "dummymail": "django.core.mail.backends.dummy.EmailBackend",
    "mailbox": MAILBOX_BACKEND,
}


def mailers_from_url(url: str, *, timeout: float) -> dict[str, dict[str, Any]]:
    """``{"default": {...}}``: the stored mailbox without a URL, else what the URL names.

    SMTP goes through ``notifications.smtp.EmailBackend``, which tells a refusal
    (safe to retry) from an unknown outcome; ``timeout`` bounds every socket
    operation, so a send cannot hang for ever holding its claim.
    """
    if not url:
        return {"default": {"BACKEND": MAILBOX_BACKEND}}
    parts = urlsplit(url)
    if parts.scheme in OTHER_SCHEMES:
        return {"default": {"BACKEND": OTHER_SCHEMES[parts.scheme]}}
    if parts.scheme not in SMTP_SCHEMES:
        known = ", ".join(sorted([*SMTP_SCHEMES, *OTHER_SCHEMES]))
        raise ValueError(f"EMAIL_URL has an unknown scheme {parts.scheme!r} (one of {known})")
    if not parts.hostname:
        raise ValueError("EMAIL_URL names no host")
    options: dict[str, Any] = {"host": parts.hostname, "port": parts.port, "timeout": timeout, **SMTP_SCHEMES[parts.scheme]}
    if parts.username:
        options["username"] = unquote(parts.username)
        options["password"] = unquote(parts.password or "")
    return {"default": {"BACKEND": SMTP_BACKEND, "OPTIONS": options}}
