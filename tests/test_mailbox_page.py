"""The demo mailbox page: the emails sent for one order, readable by its customer in the demo,
and nowhere once a real mail server is configured."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.test import Client

from notifications.mailers import MAILBOX_BACKEND
from notifications.models import EmailKind
from notifications.services import SUBJECTS, email_send
from tests.fixtures import order_body

pytestmark = pytest.mark.django_db(transaction=True)

MAILBOX = {"default": {"BACKEND": MAILBOX_BACKEND}}
SMTP = {"default": {"BACKEND": "notifications.smtp.EmailBackend", "OPTIONS": {"host": "127.0.0.1", "port": 2525}}}


def place(client: Client, email: str) -> str:
    response = client.post("/api/orders", json.dumps(order_body(email=email)), content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def send(public_id: str, event: str) -> None:
    """The pipeline's email step, as the worker runs it, into whatever MAILERS names."""
    email_send(event_id=str(uuid.uuid4()), event=event, order_id=public_id, payload={}, handler="test")


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_page_lists_this_orders_emails_and_only_them(client, catalog, settings):
    settings.MAILERS = MAILBOX
    ours, theirs = place(client, "ada@example.com"), place(client, "bob@example.com")
    send(ours, "order.placed")
    send(ours, "order.cancelled")
    send(theirs, "order.placed")

    page = client.get(f"/orders/{ours}/emails")

    assert page.status_code == 200
    words = text(page)
    received, cancelled = SUBJECTS[EmailKind.RECEIVED], SUBJECTS[EmailKind.CANCELLED]
    assert f"{received} ({ours[:8]})" in words and f"{cancelled} ({ours[:8]})" in words
    assert words.index(received) < words.index(cancelled), "oldest first"
    assert f"/orders/{ours}" in words, "the text body is shown"
    assert "To ada@example.com" in words
    assert theirs[:8] not in words and "bob@example.com" not in words


def test_an_order_without_emails_yet_says_so(client, catalog, settings):
    settings.MAILERS = MAILBOX
    public_id = place(client, "ada@example.com")

    page = client.get(f"/orders/{public_id}/emails")

    assert page.status_code == 200
    assert "No email yet" in text(page)


def test_the_page_is_not_there_when_a_mail_server_is_configured(client, catalog, settings):
    settings.MAILERS = MAILBOX
    public_id = place(client, "ada@example.com")
    send(public_id, "order.placed")
    assert client.get(f"/orders/{public_id}/emails").status_code == 200

    settings.MAILERS = SMTP

    assert client.get(f"/orders/{public_id}/emails").status_code == 404


def test_an_unknown_or_malformed_order_id_is_a_404(client, catalog, settings):
    settings.MAILERS = MAILBOX
    assert client.get("/orders/no-such-order/emails").status_code == 404
    assert client.get("/orders/%00bad/emails").status_code == 404


def test_the_order_page_links_the_mailbox_only_when_it_is_in_use(client, catalog, settings):
    public_id = place(client, "ada@example.com")
    link = f'href="/orders/{public_id}/emails"'

    settings.MAILERS = MAILBOX
    assert link in client.get(f"/orders/{public_id}").content.decode()

    settings.MAILERS = SMTP
    assert link not in client.get(f"/orders/{public_id}").content.decode()
