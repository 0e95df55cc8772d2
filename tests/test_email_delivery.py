"""Email delivery against a real SMTP server (aiosmtpd on a free loopback port).

A mail server that is down, busy (4xx) or refusing (5xx) never took the email:
it is retried, or replayed, and sent exactly once when the server takes it. An
email whose fate is unknown (no reply after the content, or a sender that died
mid-send) is in doubt: never sent again automatically, re-sent only by staff.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.utils import timezone

from notifications import services as notifications
from notifications.mailers import mailers_from_url
from notifications.models import SentEmail
from notifications.tasks import send_order_email
from orders.services import order_snapshot
from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.storefront.checkout import CheckoutRequest, place
from tests import harness
from tests.fixtures import order_body
from tests.smtp_sink import SmtpServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]
TASK = "notifications.tasks.send_order_email"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def workers(tmp_path: Any) -> Iterator[list[harness.Proc]]:
    procs: list[harness.Proc] = []
    yield procs
    for proc in procs:
        proc.stop()
    harness.empty_broker()


def mail_worker(procs: list[harness.Proc], log_dir: Any, smtp: SmtpServer, **env: str) -> harness.Proc:
    """A worker on the notifications queue alone, sending through ``smtp``."""
    env = {"EMAIL_URL": smtp.url, "EMAIL_TIMEOUT": "30", "PIPELINE_RETRY_BACKOFF_MAX": "1", **env}
    proc = harness.worker(log_dir, name=f"mail{len(procs)}", queues="notifications", concurrency=1, beat=False, **env)
    procs.append(proc)
    return proc


def new_order(**kw: Any) -> tuple[str, dict[str, Any]]:
    body = order_body(**kw)
    order, _ = place(CheckoutRequest(body["email"], body["name"], body["address"], body["items"], body["card"]))
    # Only the email is under test here: the order's own events are not for these workers.
    OutboxEvent.objects.filter(order_id=order.public_id).update(published_at=timezone.now())
    return order.public_id, order_snapshot(order)


def publish_email(order_id: str, payload: dict[str, Any]) -> str:
    event_id = str(uuid.uuid4())
    send_order_email.apply_async(
        kwargs={"event_id": event_id, "kind": "order.placed", "order_id": order_id, "payload": payload},
        task_id=f"{event_id}:{TASK}",
        queue="notifications",
    )
    return event_id


def email_row(order_id: str) -> SentEmail | None:
    return SentEmail.objects.filter(order_id=order_id, kind="received").first()


def wait_for(predicate: Any, what: str, timeout: float, procs: list[harness.Proc]) -> Any:
    """Poll for ``what``; on a timeout, print the workers' logs (what they saw is the explanation)."""
    try:
        return harness.wait_until(predicate, timeout, interval=0.2, what=what)
    except AssertionError:
        for proc in procs:
            print(f"===== {proc.name}\n{proc.log()[-6000:]}")
        raise


def wait_row(order_id: str, what: str, timeout: float, procs: list[harness.Proc], **match: Any) -> SentEmail:
    def found() -> SentEmail | None:
        row = email_row(order_id)
        ok = row and all(v(getattr(row, k)) if callable(v) else getattr(row, k) == v for k, v in match.items())
        return row if ok else None

    try:
        return wait_for(found, what, timeout, procs)
    except AssertionError:
        print(email_row(order_id) and vars(email_row(order_id)))
        raise


# ---- Through a real worker and broker ----------------------------------------------------------


@pytest.mark.pipeline
def test_an_email_refused_while_the_mail_server_is_down_is_retried_and_sent_once_it_is_back(
    catalog: Any, smtp: SmtpServer, workers: list[harness.Proc], tmp_path: Any
) -> None:
    mail_worker(workers, tmp_path, smtp, PIPELINE_MAX_RETRIES="40")
    order_id, payload = new_order()
    publish_email(order_id, payload)

    refused = wait_row(order_id, "two refused attempts", 90, workers, status="pending", attempts=lambda n: n >= 2)
    assert "could not connect" in refused.last_error
    smtp.start()

    wait_row(order_id, "the email to be sent", 90, workers, status="sent")
    assert len(smtp.sink.messages) == 1
    assert b"We have your order" in smtp.sink.messages[0]
    assert OutboxEvent.objects.filter(order_id=order_id, kind="email.sent").count() == 1
    assert "setting is deprecated" not in workers[0].log()


@pytest.mark.pipeline
def test_a_parked_email_is_sent_by_its_replay(catalog: Any, smtp: SmtpServer, workers: list[harness.Proc], tmp_path: Any) -> None:
    from shop.pipeline import deadletters, relay

    # Parked at the first refusal. (A message parked after a retry on RabbitMQ carries the
    # delayed-delivery routing key, longer than DeadLetter.queue: that park is the broker's.)
    mail_worker(workers, tmp_path, smtp, PIPELINE_MAX_RETRIES="0")
    order_id, payload = new_order()
    publish_email(order_id, payload)
    parked = DeadLetter.objects.filter(order_id=order_id, task=TASK)
    letter = wait_for(parked.first, "the dead letter", 90, workers)
    assert email_row(order_id).status == "pending"
    assert smtp.sink.messages == []

    smtp.start()
    assert deadletters.replay(letter.pk)
    relay.relay_once("test-relay")  # publishes the replay (the order's own events are already out)
    wait_row(order_id, "the replayed email to be sent", 90, workers, status="sent")
    assert len(smtp.sink.messages) == 1


@pytest.mark.pipeline
def test_a_sender_killed_mid_send_leaves_the_email_in_doubt_and_staff_resend_it(
    catalog: Any, smtp: SmtpServer, workers: list[harness.Proc], tmp_path: Any, client: Any, settings: Any
) -> None:
    smtp.sink.after_data = "hold"  # the server has the message and has not answered yet
    smtp.start()
    env = {"PIPELINE_MAX_RETRIES": "8", "EMAIL_CLAIM_SECONDS": "6"}
    first = mail_worker(workers, tmp_path, smtp, **env)
    order_id, payload = new_order()
    publish_email(order_id, payload)
    wait_for(lambda: smtp.sink.messages, "the server to receive the message", 90, workers)
    first.signal(signal.SIGKILL)
    harness.wait_until(lambda: not first.alive(), 30, 0.1, "the worker to die")
    smtp.sink.released.set()
    assert email_row(order_id).status == "sending"

    mail_worker(workers, tmp_path, smtp, **env)  # the broker redelivers the unacknowledged message to it
    row = wait_row(order_id, "the email to be in doubt", 120, workers, status="in_doubt")
    assert "never settled" in row.last_error
    assert len(smtp.sink.messages) == 1  # not sent again by the pipeline

    staff = User.objects.create_superuser("staff", "staff@example.com", "pw-for-this-test-only")
    client.force_login(staff)
    listing = client.get("/admin/notifications/sentemail/?in_doubt=yes")
    assert listing.status_code == 200 and order_id in listing.content.decode()
    settings.MAILERS = smtp.mailers()
    response = client.post("/admin/notifications/sentemail/", {"action": "resend", "_selected_action": [row.pk]})
    assert response.status_code == 302

    row.refresh_from_db()
    assert (row.status, row.resends, row.resent_by) == ("sent", 1, "staff")
    assert len(smtp.sink.messages) == 2  # the one explicit exception: a staff re-send
    assert LogEntry.objects.filter(object_id=str(row.pk)).exists()
    with pytest.raises(notifications.EmailNotInDoubt):
        notifications.email_resend(email_id=row.pk, staff="staff")


# ---- The service in process, against the same server ------------------------------------------


def send(order_id: str, event_id: str, payload: dict[str, Any]) -> None:
    notifications.email_send(event_id=event_id, event="order.placed", order_id=order_id, payload=payload, handler="t")


def test_a_busy_server_4xx_is_retried_and_sent_once(catalog: Any, smtp: SmtpServer, settings: Any) -> None:
    settings.MAILERS = smtp.mailers()
    smtp.sink.rcpt_reply = "451 4.3.0 try again later"
    smtp.start()
    order_id, payload = new_order()
    event_id = str(uuid.uuid4())
    with pytest.raises(notifications.EmailNotTaken):
        send(order_id, event_id, payload)
    row = email_row(order_id)
    assert (row.status, row.attempts) == ("pending", 1) and "451" in row.last_error

    smtp.sink.rcpt_reply = ""
    for _ in range(3):  # the retry, then duplicates
        send(order_id, event_id, payload)
    assert email_row(order_id).status == "sent"
    assert len(smtp.sink.messages) == 1


def test_a_5xx_refusal_fails_and_a_replay_sends_it(catalog: Any, smtp: SmtpServer, settings: Any) -> None:
    settings.MAILERS = smtp.mailers()
    smtp.sink.rcpt_reply = "550 5.1.1 mailbox unavailable"
    smtp.start()
    order_id, payload = new_order()
    event_id = str(uuid.uuid4())
    with pytest.raises(notifications.EmailRefused):
        send(order_id, event_id, payload)
    assert email_row(order_id).status == "failed"
    smtp.sink.rcpt_reply = ""
    send(order_id, event_id, payload)
    assert email_row(order_id).status == "sent" and len(smtp.sink.messages) == 1


def test_no_reply_after_the_content_is_in_doubt_and_never_retried(catalog: Any, smtp: SmtpServer, settings: Any) -> None:
    settings.MAILERS = smtp.mailers()
    smtp.sink.after_data = "hang up"
    smtp.start()
    order_id, payload = new_order()
    send(order_id, str(uuid.uuid4()), payload)
    row = email_row(order_id)
    assert row.status == "in_doubt" and "no reply after the message content" in row.last_error
    smtp.sink.after_data = "accept"
    send(order_id, str(uuid.uuid4()), payload)  # another delivery for the same order and kind
    assert len(smtp.sink.messages) == 1
    notifications.email_resend(email_id=row.pk, staff="staff")
    assert email_row(order_id).status == "sent" and len(smtp.sink.messages) == 2


def test_a_fresh_claim_is_left_to_its_sender_and_a_stale_one_is_in_doubt(catalog: Any, smtp: SmtpServer, settings: Any) -> None:
    settings.MAILERS = smtp.mailers()
    settings.EMAIL_CLAIM_SECONDS = 60
    smtp.start()
    order_id, payload = new_order()
    SentEmail.objects.create(order_id=order_id, kind="received", to="ada@example.com", subject="s", status="sending", attempts=1)
    with pytest.raises(notifications.EmailBeingSent) as being_sent:
        send(order_id, str(uuid.uuid4()), payload)
    assert 0 < being_sent.value.retry_in <= 60
    SentEmail.objects.filter(order_id=order_id).update(claimed_at=timezone.now() - timedelta(seconds=61))
    send(order_id, str(uuid.uuid4()), payload)
    assert email_row(order_id).status == "in_doubt"
    assert smtp.sink.messages == []


# ---- Settings -----------------------------------------------------------------------------------


def test_tests_send_into_the_locmem_outbox(catalog: Any) -> None:
    from django.core import mail

    order_id, payload = new_order()
    send(order_id, str(uuid.uuid4()), payload)
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    assert email_row(order_id).status == "sent"


def test_mailers_from_email_url() -> None:
    assert mailers_from_url("", timeout=5) == {"default": {"BACKEND": "notifications.mailbox.MailboxBackend"}}
    smtp = mailers_from_url("smtp+tls://user%40x:p%2Fw@mail.example.com:587", timeout=5)["default"]
    assert smtp == {
        "BACKEND": "notifications.smtp.EmailBackend",
        "OPTIONS": {"host": "mail.example.com", "port": 587, "timeout": 5, "use_tls": True}
        | {"username": "user@x", "password": "p/w"},
    }
    with pytest.raises(ValueError, match="unknown scheme"):
        mailers_from_url("smtpx://mail.example.com", timeout=5)


def test_email_settings_use_mailers_without_deprecation_warnings(smtp: SmtpServer) -> None:
    smtp.start()
    env = harness.child_env(EMAIL_URL=smtp.url)
    result = subprocess.run(
        [sys.executable, "-W", "always", "manage.py", "sendtestemail", "ops@example.com"],
        cwd=harness.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "setting is deprecated" not in result.stderr + result.stdout
    assert len(smtp.sink.messages) == 1
