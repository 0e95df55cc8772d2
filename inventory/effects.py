"""What the stock steps already did for an order, asked before a staff re-drive: one
``StockHold`` per order, whose status each step checks before it moves any stock."""

from __future__ import annotations

from inventory.models import HoldStatus, StockHold
from shop.pipeline.redrive import EffectCheck, register_effect_check

H = HoldStatus
# The hold statuses in which each step finds nothing left to do.
DONE = {
    "inventory.tasks.reserve_stock": {H.HELD, H.UNAVAILABLE, H.RELEASED, H.COMMITTED},
    "inventory.tasks.release_stock": {H.RELEASED, H.COMMITTED},
    "inventory.tasks.commit_stock": {H.COMMITTED, H.RELEASED, H.UNAVAILABLE},
}


def _check(task: str) -> EffectCheck:
    def check(order_id: str, event: str) -> str:
        status = StockHold.objects.filter(order_id=order_id).values_list("status", flat=True).first()
        return f"the stock hold is already {status}" if status in DONE[task] else ""

    return check


def register() -> None:
    for task in DONE:
        register_effect_check(task, _check(task))
