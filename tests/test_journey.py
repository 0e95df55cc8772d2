"""The order's journey, computed from its timeline: what is to come, in progress, done or failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shop.storefront.journey import DONE, FAILED, IN_PROGRESS, TO_COME, Progress, order_journey, review_wait

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
PROGRESS = Progress(payment_attempts=1, max_attempts=9, review_seconds=120)
HAPPY = [
    "order.placed", "payment.authorized", "fraud.cleared", "stock.reserved", "order.ready", "payment.captured",
    "shipment.created", "order.shipped", "shipment.in_transit", "order.delivered",
]  # fmt: skip


@dataclass
class Ev:
    kind: str
    created_at: datetime


def timeline(*kinds: str) -> list[Ev]:
    return [Ev(kind, T0 + timedelta(seconds=i)) for i, kind in enumerate(kinds)]


def states(journey) -> dict[str, str]:
    return {s.key: s.state for s in journey.stages}


def test_a_new_order_has_three_stages_in_progress_and_the_rest_to_come():
    j = order_journey("placed", timeline("order.placed"), PROGRESS)

    assert states(j) == {
        "payment": IN_PROGRESS, "fraud": IN_PROGRESS, "stock": IN_PROGRESS, "ready": TO_COME,
        "capture": TO_COME, "label": TO_COME, "transit": TO_COME, "delivered": TO_COME,
    }  # fmt: skip
    assert j.headline == "We have your order. Payment is being checked."
    assert not j.settled


def test_each_stage_turns_done_in_turn_with_how_long_it_took():
    j = order_journey("paid", timeline(*HAPPY[:6]), PROGRESS)

    s = states(j)
    assert [s[k] for k in ("payment", "fraud", "stock", "ready", "capture")] == [DONE] * 5
    assert s["label"] == IN_PROGRESS and s["transit"] == TO_COME
    capture = next(st for st in j.stages if st.key == "capture")
    assert capture.took == 1.0  # order.ready at +4 s, payment.captured at +5 s
    ready = next(st for st in j.stages if st.key == "ready")
    assert ready.took == 1.0, "ready starts when the last of the three checks finished (+3 s)"


def test_a_delivered_order_is_done_everywhere():
    j = order_journey("delivered", timeline(*HAPPY), PROGRESS)

    assert set(states(j).values()) == {DONE}
    assert j.headline == "Delivered." and j.settled


def test_a_parcel_delivered_before_its_transit_scan_has_every_stage_done():
    kinds = [k for k in HAPPY if k != "shipment.in_transit"]
    j = order_journey("delivered", timeline(*kinds), PROGRESS)

    assert states(j)["transit"] == DONE


def test_shipped_says_on_its_way():
    j = order_journey("shipped", timeline(*HAPPY[:8]), PROGRESS)

    assert j.headline == "On its way."
    assert states(j)["transit"] == IN_PROGRESS


def test_a_retried_payment_says_which_attempt():
    j = order_journey("placed", timeline("order.placed", "fraud.cleared"), Progress(3, 9, 120))

    payment = j.stages[0]
    assert payment.state == IN_PROGRESS
    assert payment.detail == "the payment provider is not answering, trying again (attempt 3 of 9)"
    assert j.headline == "We have your order. The payment provider is not answering yet; we keep trying."


def test_a_first_attempt_is_not_called_a_retry():
    j = order_journey("placed", timeline("order.placed"), Progress(1, 9, 120))

    assert "trying again" not in j.stages[0].detail


def test_a_review_gives_its_usual_wait():
    j = order_journey("review", timeline("order.placed", "payment.authorized", "fraud.review"), PROGRESS)

    fraud = next(s for s in j.stages if s.key == "fraud")
    assert fraud.state == IN_PROGRESS
    assert fraud.detail == "we are checking this order, usually within 2 minutes"
    assert j.headline == "We have your order. We are checking this order, usually within 2 minutes."


def test_review_waits_read_as_minutes_or_hours():
    assert review_wait(120) == "usually within 2 minutes"
    assert review_wait(30) == "usually within 1 minute"
    assert review_wait(24 * 3600) == "usually within 24 hours"


def test_a_declined_card_fails_payment_says_nothing_was_charged_and_releases_the_stock():
    kinds = ("order.placed", "stock.reserved", "payment.declined", "fraud.cleared", "order.cancelled", "stock.released")
    j = order_journey("cancelled", timeline(*kinds), PROGRESS, reason="your card was declined")

    assert j.headline == "Cancelled: your card was declined. Nothing was charged."
    assert states(j) == {"payment": FAILED, "fraud": DONE, "stock": DONE}, "stages never reached are left out"
    assert [(c.label, c.state) for c in j.compensations] == [("Items back in stock", DONE)]


def test_a_timed_out_payment_releases_the_hold_once_voided():
    kinds = ["order.placed", "fraud.cleared", "stock.reserved", "payment.failed", "order.cancelled"]
    before = order_journey("cancelled", timeline(*kinds), PROGRESS, reason="we could not take the payment")
    after = order_journey("cancelled", timeline(*kinds, "payment.voided", "stock.released"), PROGRESS, reason="x")

    assert ("Card hold released", IN_PROGRESS) in [(c.label, c.state) for c in before.compensations]
    assert not before.settled and after.settled, "the page keeps watching until the hold is released"
    assert {(c.label, c.state) for c in after.compensations} == {("Card hold released", DONE), ("Items back in stock", DONE)}
    assert before.stages[0].detail == "the payment provider did not answer"


def test_a_failed_capture_after_a_label_is_refunded_and_the_label_cancelled():
    kinds = [*HAPPY[:5], "payment.capture_failed", "order.cancelled"]
    j = order_journey("cancelled", timeline(*kinds), PROGRESS, reason="we could not take the payment")

    assert states(j)["capture"] == FAILED
    assert j.headline.endswith("Nothing was charged.")
    assert [c.label for c in j.compensations] == ["Card hold released", "Items back in stock"]


def test_a_refund_is_promised_until_it_happens():
    kinds = [*HAPPY[:7], "order.cancelled"]
    pending = order_journey("cancelled", timeline(*kinds), PROGRESS, reason="r")
    refunded = order_journey("cancelled", timeline(*kinds, "payment.refunded"), PROGRESS, reason="r")

    assert pending.headline == "Cancelled: r. Your payment is being refunded."
    assert refunded.headline == "Cancelled: r. Your payment was refunded."
    assert ("Label cancelled", IN_PROGRESS) in [(c.label, c.state) for c in pending.compensations]
