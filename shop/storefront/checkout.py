"""Checkout: validate, tokenise the card, then write the order in one transaction.

Shared by the HTML form and the JSON API. The request writes only to
PostgreSQL (the order, its lines, ``order.placed`` in the outbox and the
idempotency key, in one transaction) and never waits on the broker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from inventory.models import StockItem
from orders.models import Order
from orders.payments import gateway
from orders.services import Address, CardOnFile, LineRequest, order_place
from shop.storefront.models import IdempotencyKey, Product

MAX_ITEMS = 20
MAX_QUANTITY = 50


class CheckoutError(Exception):
    """Bad input: answered with a 4xx (or a form error) and nothing written."""

    def __init__(self, message: str, fields: dict[str, str] | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.status = status


@dataclass
class CheckoutRequest:
    email: str
    name: str
    address: dict[str, str]
    items: list[dict[str, Any]]
    card: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number]
    checksum = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        checksum += d
    return checksum % 10 == 0


def clean_card(card: dict[str, Any], today: date | None = None) -> str:
    """The card number, digits only, or a CheckoutError naming the field."""
    today = today or date.today()
    number = str(card.get("number", "")).replace(" ", "").replace("-", "")
    if not number.isdigit() or not 12 <= len(number) <= 19:
        raise CheckoutError("Card number must be 12 to 19 digits", {"card.number": "invalid card number"})
    if not luhn_ok(number):
        raise CheckoutError("Card number is not valid (checksum)", {"card.number": "invalid card number"})
    month, year = int(card.get("exp_month", 0)), int(card.get("exp_year", 0))
    if (year, month) < (today.year, today.month):
        raise CheckoutError("Card has expired", {"card.exp_year": "card has expired"})
    return number


def clean_lines(items: list[dict[str, Any]]) -> list[LineRequest]:
    if not items:
        raise CheckoutError("The order has no items", {"items": "at least one item is required"})
    if len(items) > MAX_ITEMS:
        raise CheckoutError(f"At most {MAX_ITEMS} lines per order", {"items": f"at most {MAX_ITEMS} lines"})
    skus = [str(item["sku"]) for item in items]
    seen: set[str] = set()
    for i, sku in enumerate(skus):
        if sku in seen:
            raise CheckoutError(
                f"SKU {sku} appears twice; send one line with the total quantity", {f"items.{i}.sku": "duplicated SKU"}
            )
        seen.add(sku)
    products = {p.sku: p for p in Product.objects.filter(sku__in=skus, active=True)}
    stock = dict(StockItem.objects.filter(sku__in=skus).values_list("sku", "available"))
    lines, errors = [], {}
    for i, item in enumerate(items):
        sku, quantity = str(item["sku"]), int(item["quantity"])
        product = products.get(sku)
        if product is None:
            errors[f"items.{i}.sku"] = f"unknown product {sku}"
        elif not 1 <= quantity <= MAX_QUANTITY:
            errors[f"items.{i}.quantity"] = f"quantity must be between 1 and {MAX_QUANTITY}"
        elif stock.get(sku, 0) < quantity:
            errors[f"items.{i}.quantity"] = f"only {stock.get(sku, 0)} of {product.name} left"
        else:
            lines.append(LineRequest(sku, product.name, product.price, quantity))
    if errors:
        raise CheckoutError("Some items cannot be ordered", errors)
    currencies = {products[line.sku].currency for line in lines}
    if len(currencies) != 1:
        raise CheckoutError("All items must be in one currency", {"items": "mixed currencies"})
    return lines


def clean_contact(req: CheckoutRequest) -> None:
    try:
        validate_email(req.email)
    except ValidationError:
        raise CheckoutError("Enter a valid email address", {"email": "invalid email"}) from None
    for name, value in [("name", req.name), *((f"address.{k}", v) for k, v in req.address.items())]:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in str(value)):
            raise CheckoutError(f"{name} contains control characters", {name: "control characters are not allowed"})


FINGERPRINT_SALT = "shop.checkout.idempotency-fingerprint"


def card_public_parts(card: dict[str, Any]) -> dict[str, Any]:
    """What of a card may go into a fingerprint: last four digits and expiry. Never the number or the CVC."""
    number = "".join(ch for ch in str(card.get("number", "")) if ch.isdigit())
    return {"last4": number[-4:], "exp_month": card.get("exp_month"), "exp_year": card.get("exp_year")}


def request_fingerprint(body: dict[str, Any], *, secret: str | None = None) -> str:
    """The idempotency record's fingerprint of a request: an HMAC keyed from SECRET_KEY.

    A plain hash of the body would let anyone who reads the table test guesses
    offline (a 3-digit CVC, a card number from a known range); here the card is
    reduced to its non-secret parts and the digest needs the server's key.
    """
    public = {**body, "card": card_public_parts(body["card"])} if isinstance(body.get("card"), dict) else body
    canonical = json.dumps(public, sort_keys=True, separators=(",", ":"), default=str)
    return salted_hmac(FINGERPRINT_SALT, canonical, secret=secret, algorithm="sha256").hexdigest()


def fingerprint_matches(stored: str, body: dict[str, Any]) -> bool:
    """Under the current key or a rotated-out one (``SECRET_KEY_FALLBACKS``)."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return bool(stored) and any(constant_time_compare(stored, request_fingerprint(body, secret=key)) for key in keys)


def place(
    req: CheckoutRequest, *, idempotency_key: str | None = None, fingerprint_of: dict[str, Any] | None = None
) -> tuple[Order, bool]:
    """Place the order; returns (order, created). A replayed key returns the first order.

    ``fingerprint_of`` is what must be the same for a replay (default: the whole
    request); only its HMAC fingerprint is stored (``request_fingerprint``).
    """
    basis = fingerprint_of if fingerprint_of is not None else _request_body(req)
    if idempotency_key:
        previous = _replayed(idempotency_key, basis)
        if previous is not None:
            return previous, False
    clean_contact(req)
    lines = clean_lines(req.items)
    number = clean_card(req.card)
    token = gateway.tokenize(number)
    address = Address(
        line1=req.address["line1"],
        line2=req.address.get("line2", ""),
        city=req.address["city"],
        postal_code=req.address["postal_code"],
        country=req.address["country"].upper(),
    )
    card = CardOnFile(token.token, token.brand, token.last4, token.country)
    currency = Product.objects.get(sku=lines[0].sku).currency
    try:
        with transaction.atomic():
            if idempotency_key:
                # Concurrent requests with one key serialise here, on the unique index.
                key_row = IdempotencyKey.objects.create(
                    key=idempotency_key, request_hash=request_fingerprint(basis), status_code=201, response={}
                )
            order = order_place(email=req.email, name=req.name, address=address, lines=lines, card=card, currency=currency)
            if idempotency_key:
                key_row.response = {"order": order.public_id}
                key_row.save(update_fields=["response"])
    except IntegrityError:
        previous = _replayed(idempotency_key, basis) if idempotency_key else None
        if previous is None:
            raise
        return previous, False
    return order, True


def _request_body(req: CheckoutRequest) -> dict[str, Any]:
    return {"email": req.email, "name": req.name, "address": req.address, "items": req.items, "card": req.card}


def _replayed(key: str, basis: dict[str, Any]) -> Order | None:
    row = IdempotencyKey.objects.filter(key=key).first()
    if row is None:
        return None
    if not row.request_hash:
        # Recorded before fingerprints were keyed; its plain hash was erased (orders migration 0002).
        raise CheckoutError(
            "This Idempotency-Key belongs to an earlier request that can no longer be compared; use a new key",
            {"Idempotency-Key": "reused; send a new key"},
            status=422,
        )
    if not fingerprint_matches(row.request_hash, basis):
        raise CheckoutError(
            "This Idempotency-Key was used with a different request",
            {"Idempotency-Key": "reused with a different body"},
            status=422,
        )
    return Order.objects.get(public_id=row.response["order"])
