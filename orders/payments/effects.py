"""What the payment steps already did for an order, asked before a staff re-drive
(``shop/pipeline/redrive.py``). The steps themselves decide from the payment's status, so a
re-driven message under a new id never authorises, captures, voids or refunds twice; this
only lets the re-drive say so up front."""

from __future__ import annotations

from orders.payments.models import Payment, PaymentStatus
from shop.pipeline.redrive import EffectCheck, register_effect_check

S = PaymentStatus
# Statuses past which each step has nothing left to do (a status missing here is resumed).
DONE = {
    "orders.payments.tasks.authorize_payment": {
        S.AUTHORIZED,
        S.DECLINED,
        S.FAILED,
        S.CAPTURING,
        S.CAPTURED,
        S.VOIDED,
        S.REFUNDING,
        S.REFUNDED,
        S.CANCELLED,
    },
    "orders.payments.tasks.capture_payment": {S.CAPTURED, S.REFUNDING, S.REFUNDED, S.DECLINED, S.FAILED, S.VOIDED, S.CANCELLED},
    "orders.payments.tasks.cancel_payment": {S.VOIDED, S.REFUNDED, S.CANCELLED, S.DECLINED},
}


def _check(task: str) -> EffectCheck:
    def check(order_id: str, event: str) -> str:
        status = Payment.objects.filter(order_id=order_id).values_list("status", flat=True).first()
        if status in DONE[task]:
            return f"the payment is already {status}"
        return ""

    return check


def register() -> None:
    for task in DONE:
        register_effect_check(task, _check(task))
