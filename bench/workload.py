"""The bench's orders: what a checkout sends, and waiting for the pipeline to finish them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from django.db import connection

GOOD_CARD = "4242424242424242"


def order_body(skus: list[str], *, card: str = GOOD_CARD) -> Callable[[int], dict[str, Any]]:
    """Order n: one or two lines, a good card, an email of its own (the fraud velocity rule stays quiet)."""
    run = uuid.uuid4().hex[:8]

    def body(n: int) -> dict[str, Any]:
        lines = [skus[n % len(skus)]] if n % 4 else [skus[n % len(skus)], skus[(n + 7) % len(skus)]]
        return {
            "email": f"bench-{run}-{n}@example.com",
            "name": f"Bench customer {n}",
            "address": {"line1": f"{n} Bench Road", "city": "Leeds", "postal_code": "LS1 4AP", "country": "GB"},
            "items": [{"sku": sku, "quantity": 1} for sku in lines],
            "card": {"number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }

    return body


def open_count(order_ids: list[str]) -> int:
    """How many of these orders are not in a terminal status yet."""
    from orders.models import TERMINAL, Order

    remaining = 0
    for start in range(0, len(order_ids), 5000):
        chunk = order_ids[start : start + 5000]
        remaining += Order.objects.filter(public_id__in=chunk).exclude(status__in=TERMINAL).count()
    return remaining


def wait_terminal(order_ids: list[str], timeout: float, interval: float = 0.5) -> float | None:
    """Seconds until every order is terminal, or None if ``timeout`` passed first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not open_count(order_ids):
            connection.close()
            return time.monotonic() - started
        time.sleep(interval)
    connection.close()
    return None


def outbox_drained() -> bool:
    from shop.pipeline.models import OutboxEvent

    return not OutboxEvent.objects.filter(published_at__isnull=True, parked_at__isnull=True).exists()


def first_order(url: str, skus: list[str], timeout: float = 90.0) -> str:
    """One order placed and waited for until terminal: every worker has then consumed from the
    broker and every web and database connection it needs is open. Without it a scenario's first
    seconds measured the shop starting (the first payments waited 1.3 s for a worker still
    connecting, against a p50 of 26 ms) and flattered every ratio to idle."""
    headers = {"Idempotency-Key": f"bench-first-{uuid.uuid4().hex}"}
    response = httpx.post(f"{url}/api/orders", json=order_body(skus)(0), headers=headers, timeout=30)
    response.raise_for_status()
    order_id = response.json()["id"]
    if wait_terminal([order_id], timeout) is None:
        raise RuntimeError(f"the shop's first order {order_id} was not terminal after {timeout:g} s")
    return order_id
