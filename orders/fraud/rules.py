"""Rule-based screening: each rule adds points and a reason; the total decides."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from orders.fraud.models import Decision, FraudCheck

DISPOSABLE_DOMAINS = frozenset(
    {"mailinator.com", "10minutemail.com", "guerrillamail.com", "tempmail.com", "yopmail.com", "trashmail.com"}
)
REVIEW_AT = 40
REJECT_AT = 80
HIGH_AMOUNT = Decimal("1000")
VERY_HIGH_AMOUNT = Decimal("5000")
VELOCITY_WINDOW = timedelta(minutes=10)
VELOCITY_LIMIT = 5


def velocity_exempt(email: str) -> bool:
    """The demo's own test addresses (``FRAUD_VELOCITY_EXEMPT_DOMAINS``, ``example.com`` in the demo):
    a visitor tries every test card with one email, which would otherwise look like card testing."""
    domains = {d.strip().lower() for d in getattr(settings, "FRAUD_VELOCITY_EXEMPT_DOMAINS", []) if d.strip()}
    return email.rpartition("@")[2] in domains


def score(payload: dict[str, Any]) -> tuple[int, list[str]]:
    """Points and the reasons for them; only the velocity rule knows about the demo's test addresses."""
    points, reasons = 0, []
    amount = Decimal(payload.get("amount", "0"))
    email = payload.get("email", "").lower()
    if amount >= VERY_HIGH_AMOUNT:
        points, reasons = points + 60, [*reasons, f"very high amount ({amount})"]
    elif amount >= HIGH_AMOUNT:
        points, reasons = points + 30, [*reasons, f"high amount ({amount})"]
    recent = 0
    if not velocity_exempt(email):
        recent = FraudCheck.objects.filter(email=email, created_at__gte=timezone.now() - VELOCITY_WINDOW).count()
    if recent >= VELOCITY_LIMIT:
        points, reasons = points + 40, [*reasons, f"{recent} orders from this email in 10 minutes"]
    card_country = payload.get("card_country") or ""
    ship_country = (payload.get("address") or {}).get("country", "")
    if card_country and ship_country and card_country != ship_country:
        points, reasons = points + 30, [*reasons, f"card issued in {card_country}, shipping to {ship_country}"]
    if email.rpartition("@")[2] in DISPOSABLE_DOMAINS:
        points, reasons = points + 50, [*reasons, "disposable email domain"]
    return points, reasons


def decide(points: int) -> str:
    if points >= REJECT_AT:
        return Decision.REJECT
    if points >= REVIEW_AT:
        return Decision.REVIEW
    return Decision.APPROVE
