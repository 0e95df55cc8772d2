"""Writing events: ``emit`` puts a domain event in the outbox, in the caller's transaction.

Nothing here talks to the broker. The relay (``shop/pipeline/relay.py``) publishes what
committed; what rolled back was never an event. A statement trigger (see the
migration) runs ``pg_notify('outbox', '')`` so the relay wakes at commit.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from shop.pipeline.events import known_events
from shop.pipeline.models import OutboxEvent
from shop.pipeline.request_context import current_request_id


def emit(
    kind: str,
    *,
    order_id: str,
    payload: dict[str, Any] | None = None,
    message: str = "",
    target_task: str = "",
) -> OutboxEvent:
    """Record an event for the order; must run inside the transaction that made the change."""
    if not connection.in_atomic_block:
        raise RuntimeError(f"emit({kind!r}) outside a transaction: the event could be lost or orphaned")
    if kind not in known_events():
        raise ValueError(f"{kind!r} is not in the pipeline map (shop/pipeline/events.py)")
    return OutboxEvent.objects.create(
        kind=kind,
        order_id=order_id,
        payload=payload or {},
        message=message[:300],
        request_id=current_request_id() or "",
        target_task=target_task,
    )
