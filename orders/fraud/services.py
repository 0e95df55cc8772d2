"""Fraud screening and the staff decision on a review."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from orders.fraud import rules
from orders.fraud.models import Decision, FraudCheck
from shop import faults
from shop.messaging import claim_message
from shop.outbox import emit

EVENTS = {Decision.APPROVE: "fraud.cleared", Decision.REVIEW: "fraud.review", Decision.REJECT: "fraud.rejected"}


def fraud_screen(*, event_id: str, order_id: str, payload: dict[str, Any], handler: str) -> None:
    with transaction.atomic():
        if not claim_message(event_id, handler) or FraudCheck.objects.filter(order_id=order_id).exists():
            return
        points, reasons = rules.score(payload)
        decision = rules.decide(points)
        if decision == Decision.APPROVE and random.random() < faults.get_float("fraud_review_rate"):
            decision, reasons = Decision.REVIEW, [*reasons, "sampled for manual review"]
        FraudCheck.objects.create(
            order_id=order_id,
            email=payload.get("email", "").lower(),
            amount=Decimal(payload.get("amount", "0")),
            score=points,
            decision=decision,
            reasons=reasons,
        )
        why = "; ".join(reasons) or "no risk signals"
        emit(
            EVENTS[decision],
            order_id=order_id,
            payload={"score": points, "reasons": reasons, "reason": f"rejected by fraud screening: {why}"},
            message=f"Fraud screening: {decision} (score {points}: {why})",
        )


def fraud_decide(*, order_id: str, approve: bool, user: Any = None) -> bool:
    """A staff decision on a review: resumes or cancels the order. False if there was nothing to decide."""
    with transaction.atomic():
        check = FraudCheck.objects.select_for_update().filter(order_id=order_id).first()
        if check is None or check.decision != Decision.REVIEW or check.decided_at:
            return False
        check.decided_by = user if getattr(user, "pk", None) else None
        check.decided_at = timezone.now()
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
