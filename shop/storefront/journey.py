"""The order's journey as a customer reads it: each stage still to come, in progress, done or failed.

Computed from the order's timeline (its outbox events) and nothing the customer may not see:
the event kinds say which stage started, finished or failed; only the payment's attempt count
(which no event records) comes from elsewhere, so a retried payment says so instead of looking
stuck. A plain function of its inputs, so every case is a unit test (``tests/test_journey.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

TO_COME, IN_PROGRESS, DONE, FAILED = "to_come", "in_progress", "done", "failed"
STATE_WORDS = {TO_COME: "to come", IN_PROGRESS: "in progress", DONE: "done", FAILED: "failed"}


class Event(Protocol):
    kind: str
    created_at: datetime


@dataclass(frozen=True)
class Step:
    """A stage: it starts when all of ``starts`` happened, and ends with one of ``done`` or ``failed``."""

    key: str
    label: str
    starts: tuple[str, ...]
    done: tuple[str, ...]
    failed: tuple[str, ...] = ()
    working: str = ""  # what is happening while it is in progress
    finished: str = ""  # what it means once done


STEPS = (
    Step("payment", "Payment check", ("order.placed",), ("payment.authorized",), ("payment.declined", "payment.failed"),
         "checking your card with the payment provider", "payment authorised"),
    Step("fraud", "Fraud screening", ("order.placed",), ("fraud.cleared",), ("fraud.rejected", "fraud.review_expired"),
         "screening the order", "order checks complete"),
    Step("stock", "Stock", ("order.placed",), ("stock.reserved",), ("stock.unavailable",),
         "reserving your items", "your items are reserved"),
    Step("ready", "Ready", ("payment.authorized", "fraud.cleared", "stock.reserved"), ("order.ready",), (),
         "joining the checks", "ready to ship"),
    Step("capture", "Payment taken", ("order.ready",), ("payment.captured",), ("payment.capture_failed",),
         "taking the payment", "payment taken"),
    Step("label", "Shipping label", ("payment.captured",), ("shipment.created",), (),
         "buying a shipping label", "the parcel has a label"),
    Step("transit", "In transit", ("shipment.created",), ("shipment.in_transit",), (),
         "waiting for the carrier to collect the parcel", "the carrier has the parcel"),
    Step("delivered", "Delivered", ("shipment.in_transit",), ("order.delivered",), (),
         "on its way to you", "delivered"),
)  # fmt: skip
# The stages that wait for each other; payment, fraud and stock run side by side before them.
SEQUENTIAL = ("ready", "capture", "label", "transit", "delivered")
FAILURE_WORDS = {
    "payment.declined": "your card was declined",
    "payment.failed": "the payment provider did not answer",
    "fraud.rejected": "we could not accept this order",
    "fraud.review_expired": "we could not finish checking it in time",
    "stock.unavailable": "an item is out of stock",
    "payment.capture_failed": "the payment could not be taken",
}


@dataclass(frozen=True)
class Progress:
    """What the timeline cannot say: the payment's attempts so far, the most it gets, and how long
    a fraud review may take (``FRAUD_REVIEW_DEADLINE_SECONDS``)."""

    payment_attempts: int = 0
    max_attempts: int = 1
    review_seconds: float = 0


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    state: str
    detail: str = ""
    took: float | None = None  # seconds from its start to its end, when both are known
    at: datetime | None = None  # when it ended

    @property
    def state_words(self) -> str:
        return STATE_WORDS[self.state]


@dataclass(frozen=True)
class Journey:
    headline: str
    stages: list[Stage]
    compensations: list[Stage] = field(default_factory=list)
    cancelled: bool = False
    settled: bool = False  # nothing more will change: delivered, or cancelled with everything put right


def review_wait(seconds: float) -> str:
    """``usually within 2 minutes``; hours once minutes stop being a helpful number."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 120:
        return f"usually within {minutes} minute{'s' if minutes != 1 else ''}"
    return f"usually within {math.ceil(minutes / 60)} hours"


def _first(events: list[Event], kinds: tuple[str, ...]) -> Event | None:
    return next((e for e in events if e.kind in kinds), None)


def _stage(step: Step, events: list[Event], progress: Progress) -> Stage:
    starts = [_first(events, (kind,)) for kind in step.starts]
    started = max((e.created_at for e in starts), default=None) if all(starts) else None
    end = _first(events, step.done + step.failed)
    if end is not None:
        took = (end.created_at - started).total_seconds() if started else None
        if end.kind in step.failed:
            return Stage(step.key, step.label, FAILED, FAILURE_WORDS.get(end.kind, ""), took, end.created_at)
        return Stage(step.key, step.label, DONE, step.finished, took, end.created_at)
    if started is None:
        return Stage(step.key, step.label, TO_COME)
    detail = step.working
    if step.key == "payment" and progress.payment_attempts > 1:
        detail = (
            "the payment provider is not answering, trying again "
            f"(attempt {progress.payment_attempts} of {progress.max_attempts})"
        )
    if step.key == "fraud" and _first(events, ("fraud.review",)):
        detail = f"we are checking this order, {review_wait(progress.review_seconds)}"
    return Stage(step.key, step.label, IN_PROGRESS, detail)


def _overtaken(stages: list[Stage]) -> list[Stage]:
    """A later stage done means the earlier ones are too (a carrier scan can skip "in transit")."""
    out, later_done = [], False
    for stage in reversed(stages):
        if stage.key in SEQUENTIAL and later_done and stage.state in (TO_COME, IN_PROGRESS):
            stage = Stage(stage.key, stage.label, DONE, next(s.finished for s in STEPS if s.key == stage.key))
        later_done = later_done or (stage.key in SEQUENTIAL and stage.state == DONE)
        out.append(stage)
    return out[::-1]


def _compensation(label: str, needed: bool, done_kind: str, working: str, kinds: set[str]) -> list[Stage]:
    if not needed and done_kind not in kinds:
        return []
    state = DONE if done_kind in kinds else IN_PROGRESS
    return [Stage(done_kind, label, state, "" if state == DONE else working)]


def compensations(kinds: set[str]) -> list[Stage]:
    """What is undone after a cancellation: the money, the stock, the label."""
    captured = "payment.captured" in kinds
    held = not captured and bool(kinds & {"payment.authorized", "payment.failed"})
    return [
        *_compensation("Refund", captured, "payment.refunded", "refunding your payment", kinds),
        *_compensation("Card hold released", held, "payment.voided", "releasing the hold on your card", kinds),
        *_compensation("Items back in stock", "stock.reserved" in kinds, "stock.released", "releasing your items", kinds),
        *_compensation("Label cancelled", "shipment.created" in kinds, "shipment.cancelled", "cancelling the label", kinds),
    ]


def headline(status: str, kinds: set[str], stages: list[Stage], reason: str | None, progress: Progress) -> str:
    """One sentence that is true now; never "done" while work is still running."""
    if status == "cancelled":
        if "payment.refunded" in kinds:
            money = "Your payment was refunded."
        elif "payment.captured" in kinds:
            money = "Your payment is being refunded."
        else:
            money = "Nothing was charged."
        return f"Cancelled: {reason or 'the order could not be completed'}. {money}"
    if status == "delivered":
        return "Delivered."
    if status in ("shipped", "in_transit"):
        return "On its way."
    if status == "paid":
        return "Payment taken. Your parcel is being prepared."
    if status == "ready":
        return "Checks complete. Your payment is being taken."
    if status == "review":
        return f"We have your order. We are checking this order, {review_wait(progress.review_seconds)}."
    payment = next(s for s in stages if s.key == "payment")
    if payment.state != DONE and progress.payment_attempts > 1:
        return "We have your order. The payment provider is not answering yet; we keep trying."
    if payment.state != DONE:
        return "We have your order. Payment is being checked."
    return "We have your order. Payment authorised; the last checks are running."


def order_journey(status: str, events: list[Event], progress: Progress, reason: str | None = None) -> Journey:
    """The journey of an order in ``status`` with these events (oldest first).

    A cancelled order shows the stages that ran (done, failed, or still finishing) and then
    its compensations; the stages it will never reach are left out rather than "to come".
    """
    kinds = {e.kind for e in events}
    stages = _overtaken([_stage(step, events, progress) for step in STEPS])
    cancelled = status == "cancelled"
    if cancelled:
        stages = [s for s in stages if s.state != TO_COME]
    undone = compensations(kinds) if cancelled else []
    return Journey(
        headline=headline(status, kinds, stages, reason, progress),
        stages=stages,
        compensations=undone,
        cancelled=cancelled,
        settled=status == "delivered" or (cancelled and all(c.state == DONE for c in undone)),
    )
