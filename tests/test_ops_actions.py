"""The operations page's staff actions: staff only, each calls its service and says what it did,
and bad input is a clear error that changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from shop.pipeline import consumers
from shop.pipeline.models import DeadLetter, OutboxEvent
from tests import harness

pytestmark = pytest.mark.django_db(transaction=True)

ACTIONS = ["/ops/actions/queue", "/ops/actions/redrive", "/ops/actions/replay"]


@pytest.fixture
def staff(client: Any, django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user(
        "ops-actor", password="x" * 20, is_staff=True, first_name="Grace", last_name="Hopper"
    )
    client.force_login(user)
    return client


def said(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def post(client: Any, path: str, data: dict[str, str]) -> list[str]:
    response = client.post(path, data, follow=True)
    assert response.status_code == 200, response.status_code
    assert response.redirect_chain[-1][0] == "/ops/"
    return said(response)


@pytest.mark.parametrize("path", ACTIONS)
def test_actions_are_for_staff_and_posts_only(client: Any, django_user_model: Any, path: str) -> None:
    assert client.post(path, {})["Location"].startswith("/admin/login/")
    client.force_login(django_user_model.objects.create_user("ops-customer", password="x" * 20))
    assert client.post(path, {}).status_code == 403


def test_the_page_shows_the_three_forms(staff: Any) -> None:
    body = staff.get("/ops/").content.decode()
    for form in ("ops-pause-form", "ops-redrive-form", "ops-replay-form"):
        assert f'id="{form}"' in body
    assert "create_shipment on payment.captured" in body


def test_bad_input_is_a_clear_error_and_changes_nothing(staff: Any) -> None:
    events = OutboxEvent.objects.count()
    assert post(staff, "/ops/actions/queue", {"queue": "no-such-queue", "action": "pause"})[0].startswith("Nothing done: queue:")
    text = post(
        staff, "/ops/actions/redrive", {"order_id": "no-such-order", "stage": "shipping.tasks.create_shipment|payment.captured"}
    )
    assert text[0].startswith("Order no-such-order not re-driven:"), text
    text = post(staff, "/ops/actions/replay", {"since": "2026-12-01T10:00", "until": "2026-12-01T09:00"})
    assert text == ["Nothing done: 'since' must be before 'until'."]
    assert OutboxEvent.objects.count() == events


def test_replay_in_bulk_says_how_many_and_what_became_of_them(staff: Any) -> None:
    for n in range(2):
        DeadLetter.objects.create(
            task="notifications.tasks.send_order_email",
            queue="notifications",
            message_id=f"m-{n}",
            delivery_id=f"d-{n}",
            order_id="",
            kwargs={"event_id": f"m-{n}", "kind": "order.placed", "order_id": "", "payload": {}},
            error="boom",
            traceback="",
            attempts=1,
        )
    text = post(staff, "/ops/actions/replay", {"task": "notifications.tasks.send_order_email"})
    assert text[0].startswith("Replayed 2 dead letter(s)"), text
    assert not DeadLetter.objects.filter(status=DeadLetter.Status.PARKED).exists()


@pytest.mark.pipeline
def test_pause_and_resume_a_stage_from_the_page(staff: Any, without_shared_pipeline: None, tmp_path: Any) -> None:
    worker = harness.worker(tmp_path, name="notifications", queues="notifications", concurrency=1, beat=False)
    try:
        harness.wait_until(lambda: consumers.queue_state("notifications", timeout=1).consuming, 60, what="the worker")
        text = post(staff, "/ops/actions/queue", {"queue": "notifications", "action": "pause"})
        assert text[0].startswith("notifications paused by notifications@"), text
        assert consumers.queue_state("notifications", timeout=1).is_paused
        text = post(staff, "/ops/actions/queue", {"queue": "notifications", "action": "resume"})
        assert text[0].startswith("notifications resumed by notifications@"), text
        assert consumers.queue_state("notifications", timeout=1).consuming
    finally:
        worker.stop()
