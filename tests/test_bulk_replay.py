"""Bulk replay of dead letters by task and time range, on real processes, and what became of
each replayed letter: its stage completed, or it was parked again."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.utils import timezone

from orders.payments.models import Payment
from shop.pipeline import replays
from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.pipeline.outbox import emit
from tests.harness import wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

CANCEL = "orders.payments.tasks.cancel_payment"
SCREEN = "orders.fraud.tasks.screen_order"
MALFORMED = "ORD-MALFORMED"


def parked_void(order_id: str) -> DeadLetter:
    """The order's void, parked: the gateway was down for the authorisation and for the void."""
    return wait_until(
        lambda: DeadLetter.objects.filter(order_id=order_id, task=CANCEL, status="parked").first(),
        90,
        what=f"the void of {order_id} to be parked",
    )


def outcome_becomes(letter_id: int, expected: str) -> None:
    wait_until(lambda: replays.replay_outcomes([letter_id])[letter_id] == expected, 30, what=f"letter {letter_id} {expected}")


def test_bulk_replay_by_task_and_time_range(pipeline, shop_api, fault):
    fault("gateway_failure_rate", "1")
    first = parked_void(shop_api.place(sku="SKU-1")["id"])
    time.sleep(0.05)
    middle = timezone.now()
    second_order = shop_api.place(sku="SKU-1")["id"]
    second = parked_void(second_order)
    with transaction.atomic():  # no lines: every subscriber refuses it at once, parked
        emit("order.placed", order_id=MALFORMED, payload={"lines": "not a list"})
    wait_until(lambda: DeadLetter.objects.filter(order_id=MALFORMED, task=SCREEN).exists(), 30, what="parked copies")
    fault("gateway_failure_rate", "0")

    later = replays.replay_matching(staff="Grace Hopper", task=CANCEL, since=middle)
    assert later.replayed == (second.pk,) and later.count == 1
    assert replays.replay_outcome(DeadLetter.objects.get(pk=first.pk)) == "parked"
    outcome_becomes(second.pk, "completed")
    assert Payment.objects.get(order_id=second_order).status == "voided"
    entry = OutboxEvent.objects.get(order_id=second_order, kind="message.replayed")
    assert entry.message == "Grace Hopper replayed cancel_payment"

    earlier = replays.replay_matching(staff="Grace Hopper", task=CANCEL, until=middle)
    assert earlier.replayed == (first.pk,)
    outcome_becomes(first.pk, "completed")
    assert replays.replay_matching(staff="Grace Hopper", task=CANCEL).count == 0  # nothing parked is left

    poison = DeadLetter.objects.get(order_id=MALFORMED, task=SCREEN)
    assert replays.replay_matching(staff="Grace Hopper", task=SCREEN).replayed == (poison.pk,)
    outcome_becomes(poison.pk, "parked again")
    still = replays.parked_letters(task="orders.payments.tasks.authorize_payment")
    assert list(still.values_list("order_id", flat=True)) == [MALFORMED]  # other tasks untouched
    assert replays.replay_letters([poison.pk], staff="Grace Hopper").skipped == (poison.pk,)
    with pytest.raises(ValueError, match="empty"):
        replays.replay_matching(staff="Grace Hopper", since=middle, until=middle)
