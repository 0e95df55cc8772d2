"""What fraud screening already did for an order, asked before a staff re-drive: one
``FraudCheck`` per order, which ``fraud_screen`` looks for before it screens."""

from __future__ import annotations

from orders.fraud.models import FraudCheck
from shop.pipeline.redrive import register_effect_check


def screened(order_id: str, event: str) -> str:
    decision = FraudCheck.objects.filter(order_id=order_id).values_list("decision", flat=True).first()
    return f"the order was already screened: {decision}" if decision else ""


def register() -> None:
    register_effect_check("orders.fraud.tasks.screen_order", screened)
