"""The idempotent consumer: a (message, handler) pair takes effect at most once.

The processed-message row is inserted in the same transaction as the effect,
with ``ON CONFLICT DO NOTHING``: a second delivery of the same message, even
one running concurrently, waits on the unique index and then finds the row.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import connection

from shop.pipeline.errors import PermanentError
from shop.pipeline.events import known_events
from shop.pipeline.models import ProcessedMessage


def claim_message(message_id: str | uuid.UUID, handler: str) -> bool:
    """True the first time; False when this handler already processed this message.

    Call it inside the transaction that applies the effect.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("claim_message must run inside the effect's transaction")
    table = ProcessedMessage._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} (message_id, handler, processed_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (message_id, handler) DO NOTHING RETURNING id",
            [str(message_id), handler],
        )
        return cur.fetchone() is not None


def already_processed(message_id: str | uuid.UUID, handler: str) -> bool:
    """A cheap early exit before an outside call; the final word is ``claim_message``."""
    return ProcessedMessage.objects.filter(message_id=message_id, handler=handler).exists()


class MalformedMessage(PermanentError):
    """A message that does not match the event's contract: parked at once, never retried."""


# What each event's payload must carry for its consumers; the producer (``order_snapshot``)
# always sends these, so a message without them did not come from this pipeline intact.
PAYLOAD_CONTRACTS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "order.placed": {
        "email": str,
        "amount": str,
        "currency": str,
        "card_token": str,
        "address": dict,
        "lines": list,
    },
    # The label is bought from this event: it carries the address the parcel goes to.
    "payment.captured": {"address": dict},
}


def check_message(kwargs: dict[str, Any]) -> None:
    """Refuse a pipeline message whose envelope or payload is malformed, before any effect.

    A handler that trusted such a message could create a payment for an order that
    does not exist, or reserve stock for lines nobody ordered.
    """
    problems = []
    try:
        uuid.UUID(str(kwargs.get("event_id", "")))
    except ValueError:
        problems.append("event_id is not a UUID")
    order_id, kind, payload = kwargs.get("order_id"), kwargs.get("kind"), kwargs.get("payload")
    if not isinstance(order_id, str) or not 1 <= len(order_id) <= 32:
        problems.append("order_id is missing or too long")
    if kind not in known_events():
        problems.append(f"unknown event kind {kind!r}")
    if not isinstance(payload, dict):
        problems.append("payload is not an object")
    else:
        for key, expected in PAYLOAD_CONTRACTS.get(str(kind), {}).items():
            if not isinstance(payload.get(key), expected):
                problems.append(f"payload.{key} is missing or not a {getattr(expected, '__name__', expected)}")
        if kind == "order.placed" and not problems:
            problems += _order_placed_problems(payload)
    if problems:
        raise MalformedMessage("; ".join(problems))


def _order_placed_problems(payload: dict[str, Any]) -> list[str]:
    problems = []
    try:
        if Decimal(payload["amount"]) <= 0:
            problems.append("payload.amount is not positive")
    except InvalidOperation:
        problems.append("payload.amount is not a number")
    if not payload["card_token"] or not payload["currency"]:
        problems.append("payload.card_token or payload.currency is empty")
    lines = payload["lines"]
    if not lines or not all(
        isinstance(li, dict) and isinstance(li.get("sku"), str) and isinstance(li.get("quantity"), int) and li["quantity"] > 0
        for li in lines
    ):
        problems.append("payload.lines must be a non-empty list of {sku, quantity > 0}")
    return problems
