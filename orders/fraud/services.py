"""Fraud screening, the staff decision on a review, and the review's deadline.

A review holds the order's stock and the card's authorisation, so it cannot wait
forever: past ``FRAUD_REVIEW_DEADLINE_SECONDS`` a beat-driven sweep expires it and
emits ``fraud.review_expired``; the order's state machine cancels the order and
the usual compensations (void, release, email) follow. A staff decision that
comes too late finds the review expired and changes nothing.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.fraud import rules
from orders.fraud.models import Decision, FraudCheck
from shop.pipeline import faults
from shop.pipeline.messaging import claim_message
from shop.pipeline.outbox import emit

EVENTS = {Decision.APPROVE: "fraud.cleared", Decision.REVIEW: "fraud.review", Decision.REJECT: "fraud.rejected"}
REVIEW_EXPIRED_REASON = "fraud review not completed in time"


def fraud_screen(*, event_id: str, order_id: str, payload: dict[str, Any], handler: str) -> None:
    """Score the order once and emit the decision; the scoring's pace is the ``fraud_latency_ms``
    switch (outside the transaction, as a call to a scoring service would be)."""
    faults.simulated_delay("fraud_latency_ms")
    with transaction.atomic():
        if not claim_message(event_id, handler) or FraudCheck.objects.filter(order_id=order_id).exists():
            return
        points, reasons = rules.score(payload)
        decision = rules.decide(points)
        if decision == Decision.APPROVE and random.random() < faults.get_float("fraud_review_rate"):
            decision, reasons = Decision.REVIEW, [*reasons, "sampled for manual review"]
        deadline = None
        if decision == Decision.REVIEW:
            deadline = timezone.now() + timedelta(seconds=settings.FRAUD_REVIEW_DEADLINE_SECONDS)
        FraudCheck.objects.create(
            order_id=order_id,
            email=payload.get("email", "").lower(),
            amount=Decimal(payload.get("amount", "0")),
            score=points,
            decision=decision,
            reasons=reasons,
            review_deadline=deadline,
        )
        why = "; ".join(reasons) or "no risk signals"
        emit(
            EVENTS[decision],
            order_id=order_id,
            payload={"score": points, "reasons": reasons, "reason": f"rejected by fraud screening: {why}"},
            message=f"Fraud screening: {decision} (score {points}: {why})",
        )


def fraud_decide(*, order_id: str, approve: bool, user: Any = None) -> bool:
    """A staff decision on a review: resumes or cancels the order. False if there was nothing to decide.

    Past the deadline the decision comes too late: the review is expired here (as the
    next sweep would) so the outcome never depends on when the sweeper last ran.
    """
    with transaction.atomic():
        check = FraudCheck.objects.select_for_update().filter(order_id=order_id).first()
        if check is None or check.decision != Decision.REVIEW or check.decided_at:
            return False
        now = timezone.now()
        if check.review_deadline and check.review_deadline <= now:
            _expire(check, now)
            return False
        check.decided_by = user if getattr(user, "pk", None) else None
        check.decided_at = now
        check.decision = Decision.APPROVE if approve else Decision.REJECT
        check.save()
        who = getattr(user, "username", "staff")
        emit(
            "fraud.cleared" if approve else "fraud.rejected",
            order_id=order_id,
            payload={"reason": f"rejected by fraud review ({who})", "decided_by": who},
            message=f"Fraud review: {'approved' if approve else 'rejected'} by {who}",
        )
    return True


def fraud_expire_reviews(*, now: datetime | None = None, limit: int = 200) -> int:
    """Expire the open reviews whose deadline has passed; returns how many.

    Run by beat every ``FRAUD_REVIEW_SWEEP_SECONDS``: a sweep over the table is what
    holds the deadline, not a countdown task per review (those live in broker or
    worker memory and can be lost or delayed). ``SKIP LOCKED`` lets sweepers run
    side by side, and past a staff decision holding its row, without waiting;
    the status guard means a review is expired once.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            FraudCheck.objects.select_for_update(skip_locked=True)
            .filter(decision=Decision.REVIEW, review_deadline__lte=now)
            .order_by("review_deadline")[:limit]
        )
        for check in due:
            _expire(check, now)
    return len(due)


def _expire(check: FraudCheck, now: datetime) -> None:
    check.decision = Decision.EXPIRED
    check.decided_at = now
    check.save(update_fields=["decision", "decided_at"])
    waited = _duration((check.review_deadline or now) - check.created_at)
    emit(
        "fraud.review_expired",
        order_id=check.order_id,
        payload={
            "reason": REVIEW_EXPIRED_REASON,
            "detail": f"We could not finish checking your order in time (within {waited}), so we cancelled it "
            "rather than keep your items and a hold on your card any longer. You are welcome to order again.",
        },
        message=f"Fraud review not completed in time ({waited}): the order is cancelled",
    )


def _duration(span: timedelta) -> str:
    seconds = max(0, round(span.total_seconds()))
    if seconds >= 2 * 3600:
        return f"{round(seconds / 3600)} hours"
    if seconds >= 2 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds} seconds"
