"""The orders' side of the operations page: counts by status, orders that have not moved for too
long and the stage each waits on, open fraud reviews with their deadline, and the last failures.
Each order comes with the link to its admin page, where staff act on it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.urls import reverse

from orders.fraud.models import Decision, FraudCheck
from orders.models import TERMINAL, Order, OrderStatus
from shop.pipeline.models import DeadLetter

LIST_LIMIT = 20
FAILURES_SHOWN = 10

# The stage an order in each status waits on next (``placed`` is worked out from its steps).
NEXT_STAGE: dict[str, str] = {
    OrderStatus.REVIEW: "fraud review (staff decision)",
    OrderStatus.READY: "payments: capture",
    OrderStatus.PAID: "shipping: label",
    OrderStatus.SHIPPED: "carrier: in transit",
    OrderStatus.IN_TRANSIT: "carrier: delivery",
}


def waiting_on(order: Order) -> str:
    """The stage a non-terminal order waits on, from its status and the join's step times."""
    if order.status != OrderStatus.PLACED:
        return NEXT_STAGE.get(order.status, order.status)
    missing = [
        name
        for name, done in (
            ("payments", order.payment_authorized_at),
            ("fraud", order.fraud_cleared_at),
            ("inventory", order.stock_reserved_at),
        )
        if done is None
    ]
    return ", ".join(missing) if missing else "orders: the join"


def _age(now: datetime, then: datetime | None) -> float | None:
    return round((now - then).total_seconds(), 1) if then else None


def order_link(public_id: str) -> str:
    """The admin search for one order by its public id (works without knowing its primary key)."""
    return reverse("admin:orders_order_changelist") + f"?q={public_id}"


def by_status() -> dict[str, int]:
    """Every status with its count, zeros included, in the order's lifecycle order."""
    found = dict(Order.objects.values_list("status").annotate(n=Count("id")))
    return {status: found.get(status, 0) for status in OrderStatus.values}


def stuck_orders(now: datetime) -> list[dict[str, Any]]:
    """Orders not terminal and not changed for longer than ``OPS_STUCK_SECONDS``, oldest first."""
    before = now - timedelta(seconds=settings.OPS_STUCK_SECONDS)
    rows = Order.objects.exclude(status__in=TERMINAL).filter(updated_at__lt=before).order_by("updated_at")[:LIST_LIMIT]
    return [
        {
            "order": o.public_id,
            "status": o.status,
            "waiting_on": waiting_on(o),
            "idle_s": _age(now, o.updated_at),
            "url": reverse("admin:orders_order_change", args=[o.pk]),
        }
        for o in rows
    ]


def open_reviews(now: datetime) -> list[dict[str, Any]]:
    """Fraud checks waiting for staff, the nearest deadline first."""
    rows = FraudCheck.objects.filter(decision=Decision.REVIEW).order_by("review_deadline")[:LIST_LIMIT]
    return [
        {
            "order": c.order_id,
            "score": c.score,
            "deadline": c.review_deadline.isoformat() if c.review_deadline else None,
            "left_s": round((c.review_deadline - now).total_seconds(), 1) if c.review_deadline else None,
            "url": reverse("admin:fraud_fraudcheck_change", args=[c.pk]),
            "order_url": order_link(c.order_id),
        }
        for c in rows
    ]


def last_failures(now: datetime) -> list[dict[str, Any]]:
    """The newest dead letters: what failed, when, and the links to it and its order."""
    rows = DeadLetter.objects.order_by("-id")[:FAILURES_SHOWN]
    return [
        {
            "task": d.task.rsplit(".", 1)[-1],
            "queue": d.queue,
            "order": d.order_id,
            "error": d.error[:160],
            "status": d.status,
            "age_s": _age(now, d.created_at),
            "url": reverse("admin:pipeline_deadletter_change", args=[d.pk]),
            "order_url": order_link(d.order_id) if d.order_id else None,
        }
        for d in rows
    ]


def order_figures(now: datetime) -> dict[str, Any]:
    """The whole orders block of the snapshot."""
    return {
        "by_status": by_status(),
        "stuck": stuck_orders(now),
        "stuck_after_s": settings.OPS_STUCK_SECONDS,
        "reviews": open_reviews(now),
        "failures": last_failures(now),
    }
