"""The velocity rule: many orders from one email in ten minutes mean a review, except for the
demo's own test addresses (``FRAUD_VELOCITY_EXEMPT_DOMAINS``), so every test card can be tried in a row."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.fraud import rules
from orders.fraud.models import Decision, FraudCheck

pytestmark = pytest.mark.django_db


def earlier_orders(email: str, count: int) -> None:
    for i in range(count):
        FraudCheck.objects.create(
            order_id=f"earlier-{email}-{i}", email=email, amount=Decimal("10"), score=0, decision=Decision.APPROVE
        )


def payload(email: str) -> dict:
    return {"email": email, "amount": "10.00", "address": {"country": "GB"}, "card_country": "GB"}


def test_the_sixth_order_from_one_email_is_reviewed(settings):
    settings.FRAUD_VELOCITY_EXEMPT_DOMAINS = []
    earlier_orders("ada@example.com", rules.VELOCITY_LIMIT)

    points, reasons = rules.score(payload("ada@example.com"))

    assert rules.decide(points) == Decision.REVIEW
    assert any("orders from this email" in r for r in reasons)


def test_the_demo_domain_is_exempt_from_the_velocity_rule(settings):
    settings.FRAUD_VELOCITY_EXEMPT_DOMAINS = ["example.com"]
    earlier_orders("ada@example.com", rules.VELOCITY_LIMIT + 3)

    points, reasons = rules.score(payload("Ada@Example.com"))

    assert rules.decide(points) == Decision.APPROVE
    assert not any("orders from this email" in r for r in reasons)


def test_the_exemption_covers_only_the_velocity_rule(settings):
    settings.FRAUD_VELOCITY_EXEMPT_DOMAINS = ["example.com"]
    earlier_orders("bob@elsewhere.test", rules.VELOCITY_LIMIT)
    earlier_orders("cy@example.com", rules.VELOCITY_LIMIT)

    other, _ = rules.score(payload("bob@elsewhere.test"))
    big, reasons = rules.score({**payload("cy@example.com"), "amount": "6000"})

    assert rules.decide(other) == Decision.REVIEW  # another domain still counts
    assert rules.decide(big) == Decision.REVIEW and any("very high amount" in r for r in reasons)
