"""A simulated payment gateway that behaves like a real one.

Latency, outages and timeouts are fault switches (``shop/pipeline/faults.py``); test
cards have the outcomes payment sandboxes conventionally give them; every call
takes an idempotency key, and a retried call with the same key returns the
stored response instead of charging again (a different request under the same
key is refused, as Stripe does). A timeout can happen *after* the gateway did
the work, which is exactly why the keys matter.

An authorisation is valid for ``GATEWAY_AUTHORIZATION_TTL_SECONDS`` (days, as with
real card networks): a capture after that is declined ``authorization_expired``,
which is what a long fraud review can run into. One test card authorises and then
declines every capture (``capture_declined``), so the pipeline's answer to a failed
capture can be seen.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.payments.models import GatewayCard, GatewayTransaction
from shop.pipeline import faults
from shop.pipeline.errors import PermanentError, TransientError

# Test cards and their fixed outcomes; any other well-formed number approves.
TEST_CARDS: dict[str, str] = {
    "4242424242424242": "approve",
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000119": "timeout",
    "4000000000000341": "capture_declined",  # authorises; every capture is declined (Stripe's sandbox does the same)
}
APPROVES_AUTHORIZATION = frozenset({"approve", "timeout", "capture_declined"})
# Issuer countries by prefix, for the fraud screen's country check.
ISSUER_COUNTRIES: dict[str, str] = {"4000000760": "BR", "4000001240": "CA", "4000002500": "FR", "4000008400": "US"}


class GatewayTimeout(TransientError):
    """No answer in time: the gateway may or may not have done the work."""


class GatewayUnavailable(TransientError):
    """A 503 before anything happened."""


class IdempotencyConflict(PermanentError):
    """The same key was sent with a different request."""


@dataclass(frozen=True)
class CardToken:
    token: str
    brand: str
    last4: str
    country: str


@dataclass(frozen=True)
class GatewayResponse:
    approved: bool
    authorization_id: str = ""
    decline_code: str = ""


def card_brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    return "card"


def tokenize(number: str) -> CardToken:
    """Exchange a card number for a token (in production the browser does this with the gateway)."""
    card = GatewayCard.objects.create(
        token=f"tok_{secrets.token_hex(12)}",
        brand=card_brand(number),
        last4=number[-4:],
        country=next((c for p, c in ISSUER_COUNTRIES.items() if number.startswith(p)), "GB"),
        behaviour=TEST_CARDS.get(number, "approve"),
    )
    return CardToken(card.token, card.brand, card.last4, card.country)


def _network() -> None:
    faults.simulated_delay("gateway_latency_ms")
    if random.random() < faults.get_float("gateway_failure_rate"):
        raise GatewayUnavailable("gateway answered 503 Service Unavailable")


def _call(
    key: str, operation: str, reference: str, amount: Decimal, decide, behaviour: str = "", card_token: str = ""
) -> GatewayResponse:
    _network()
    request_hash = hashlib.sha256(f"{operation}|{reference}|{amount}".encode()).hexdigest()
    stored = GatewayTransaction.objects.filter(idempotency_key=key).first()
    if stored is None:
        response = decide()
        try:
            with transaction.atomic():
                stored = GatewayTransaction.objects.create(
                    idempotency_key=key,
                    operation=operation,
                    reference=reference,
                    request_hash=request_hash,
                    amount=amount,
                    approved=response.approved,
                    authorization_id=response.authorization_id,
                    decline_code=response.decline_code,
                    card_token=card_token,
                )
        except IntegrityError:  # a concurrent call with the same key won
            stored = GatewayTransaction.objects.get(idempotency_key=key)
    if stored.request_hash != request_hash:
        raise IdempotencyConflict(f"idempotency key {key} reused with different parameters")
    if behaviour == "timeout" or random.random() < faults.get_float("gateway_timeout_rate"):
        raise GatewayTimeout(f"gateway did not answer {operation} {key} in time")
    return GatewayResponse(stored.approved, stored.authorization_id, stored.decline_code)


def authorize(*, key: str, reference: str, token: str, amount: Decimal) -> GatewayResponse:
    card = GatewayCard.objects.filter(token=token).first()
    behaviour = card.behaviour if card else "invalid_token"

    def decide() -> GatewayResponse:
        if behaviour in APPROVES_AUTHORIZATION:
            return GatewayResponse(True, authorization_id=f"auth_{secrets.token_hex(8)}")
        return GatewayResponse(False, decline_code=behaviour)

    return _call(key, "authorize", reference, amount, decide, behaviour, card_token=token)


def _follow_up(
    operation: str,
    *,
    key: str,
    reference: str,
    authorization_id: str,
    amount: Decimal,
    check: Callable[[GatewayTransaction], str] | None = None,
) -> GatewayResponse:
    def decide() -> GatewayResponse:
        auth = GatewayTransaction.objects.filter(operation="authorize", authorization_id=authorization_id, approved=True).first()
        if auth is None:
            return GatewayResponse(False, decline_code="no_such_authorization")
        refused = check(auth) if check else ""
        if refused:
            return GatewayResponse(False, authorization_id=authorization_id, decline_code=refused)
        return GatewayResponse(True, authorization_id=authorization_id)

    return _call(key, operation, reference, amount, decide)


def _capture_refusal(auth: GatewayTransaction) -> str:
    """Why the issuer declines capturing this authorisation, if it does."""
    card = GatewayCard.objects.filter(token=auth.card_token).first() if auth.card_token else None
    if card is not None and card.behaviour == "capture_declined":
        return "capture_declined"
    age = (timezone.now() - auth.created_at).total_seconds()
    if age > settings.GATEWAY_AUTHORIZATION_TTL_SECONDS:
        return "authorization_expired"
    return ""


def capture(*, key: str, reference: str, authorization_id: str, amount: Decimal) -> GatewayResponse:
    """Capture an authorisation; declined for the capture-declined card and after the authorisation expired."""
    return _follow_up(
        "capture", key=key, reference=reference, authorization_id=authorization_id, amount=amount, check=_capture_refusal
    )


def void(*, key: str, reference: str, authorization_id: str) -> GatewayResponse:
    return _follow_up("void", key=key, reference=reference, authorization_id=authorization_id, amount=Decimal(0))


def refund(*, key: str, reference: str, authorization_id: str, amount: Decimal) -> GatewayResponse:
    return _follow_up("refund", key=key, reference=reference, authorization_id=authorization_id, amount=amount)


def find_authorization(*, key: str) -> str:
    """The authorization id recorded under an authorize key, if the gateway did authorise (a lookup API)."""
    _network()
    row = GatewayTransaction.objects.filter(idempotency_key=key, operation="authorize", approved=True).first()
    return row.authorization_id if row else ""
