"""Payment steps: authorise, capture, and the compensations (void, refund).

Every gateway call is preceded by a committed "in flight" state (authorizing,
capturing, voiding, refunding) and made with a stable idempotency key: a
redelivered message resumes the call instead of starting a second charge, and
a cancellation that arrives mid-call sets ``cancel_requested`` so whoever
finishes the call undoes it. Gateway calls never run inside a transaction.

Compensations (void, refund) decide from the payment row *locked*, before and
after their gateway call: a copy that finds the work already done does nothing,
and an authorisation learnt late (a concurrent copy of the authorise message)
is voided by whoever learns of it. A compensation the gateway did not complete
raises ``CompensationPending``: retried like any step, parked when it still
fails, never acked as done.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import transaction

from orders.payments import gateway
from orders.payments.models import Payment, PaymentStatus
from shop.pipeline.errors import PermanentError, TransientError
from shop.pipeline.messaging import already_processed, claim_message
from shop.pipeline.outbox import emit
from shop.pipeline.rows import locked_row

log = logging.getLogger("orders.payments")
S = PaymentStatus
COMPENSATING = (S.VOIDING, S.REFUNDING)
# Given up on (the authorisation kept failing) or cancelled before any money moved.
ABANDONED = (S.FAILED, S.CANCELLED)


class CompensationPending(TransientError):
    """A void or refund the gateway did not complete (an outage, a timeout): try again later."""


class CompensationRefused(PermanentError):
    """The gateway refused a refund: retrying cannot help, staff must look at it."""


def _locked(order_id: str, payload: dict[str, Any] | None = None) -> Payment:
    """The order's payment, locked; created (pending) on first sight, whichever event comes first.
    The authorisation (with the order's payload) nearly always sees it first: it inserts first."""
    payload = payload or {}

    def new() -> Payment:
        return Payment(
            order_id=order_id,
            amount=Decimal(payload.get("amount", "0")),
            currency=payload.get("currency", ""),
            card_token=payload.get("card_token", ""),
        )

    return locked_row(Payment, new, insert_first=bool(payload), order_id=order_id)


def _set(payment: Payment, status: str, **fields: Any) -> None:
    """Change the locked payment's status (and ``fields``), writing only those columns."""
    payment.status = status
    for name, value in fields.items():
        setattr(payment, name, value)
    payment.save(update_fields=["status", *fields, "updated_at"])


def payment_authorize(*, event_id: str, order_id: str, payload: dict[str, Any], handler: str) -> None:
    """Authorise the order's amount once, whatever the number of copies of the message."""
    if already_processed(event_id, handler):
        return
    with transaction.atomic():
        payment = _locked(order_id, payload)
        if payment.status in COMPENSATING:
            resume = True
        elif payment.status in (S.PENDING, S.AUTHORIZING):
            resume = False
            _set(payment, S.AUTHORIZING, attempts=payment.attempts + 1)
        else:
            claim_message(event_id, handler)
            return
    if resume:
        _compensate(order_id, event_id, handler)
        return
    response = gateway.authorize(
        key=payment.key("authorize"), reference=order_id, token=payment.card_token, amount=payment.amount
    )
    with transaction.atomic():
        compensate = _record_authorization(_locked(order_id), response)
        if not compensate:
            claim_message(event_id, handler)
    if compensate:
        _compensate(order_id, event_id, handler)


def _record_authorization(payment: Payment, response: gateway.GatewayResponse) -> bool:
    """Record the gateway's answer on the locked payment; True when an authorisation must be voided."""
    if payment.status != S.AUTHORIZING:
        if not (response.approved and _learnt_too_late(payment)):
            return False
        # Another copy gave up, or the order was cancelled, while this call was in flight.
        log.warning("payment %s: authorisation approved after it was %s; voiding it", payment.order_id, payment.status)
        _set(payment, S.VOIDING, authorization_id=response.authorization_id)
        return True
    if not response.approved:
        _record_decline(payment, response.decline_code)
        return False
    emit(
        "payment.authorized",
        order_id=payment.order_id,
        payload={"authorization_id": response.authorization_id},
        message=f"Payment authorised: {payment.currency} {payment.amount}",
    )
    _set(payment, S.VOIDING if payment.cancel_requested else S.AUTHORIZED, authorization_id=response.authorization_id)
    return payment.status == S.VOIDING


def _learnt_too_late(payment: Payment) -> bool:
    """An approval that no one else knows of, for a payment that was given up on or cancelled."""
    if payment.status in ABANDONED:
        return True
    return payment.status in (S.VOIDING, S.VOIDED) and not payment.authorization_id


def _record_decline(payment: Payment, decline_code: str) -> None:
    _set(payment, S.DECLINED, decline_code=decline_code)
    reason = decline_code.replace("_", " ")
    emit(
        "payment.declined",
        order_id=payment.order_id,
        payload={"reason": f"payment declined: {reason}"},
        message=f"Payment declined ({reason})",
    )


def payment_abandon(*, event_id: str, order_id: str, reason: str, handler: str) -> None:
    """Give up on an authorisation that kept timing out; the order's cancellation voids whatever the gateway did.

    Only for a payment still authorising: in any other state another copy moved it on,
    and the copy that did owns what follows (a compensation is never abandoned here).
    """
    with transaction.atomic():
        payment = _locked(order_id)
        if payment.status != S.AUTHORIZING:
            return
        emit("payment.failed", order_id=order_id, payload={"reason": reason}, message=f"Payment failed: {reason}")
        if not payment.cancel_requested:
            _set(payment, S.FAILED, decline_code="gateway_timeout")
            claim_message(event_id, handler)
            return
        _set(payment, S.VOIDING, decline_code="gateway_timeout")
    _compensate(order_id, event_id, handler)


def payment_capture(*, event_id: str, order_id: str, payload: dict[str, Any], handler: str) -> None:
    """Capture the authorised amount; ``payment.captured`` carries the address the parcel goes to."""
    if already_processed(event_id, handler):
        return
    with transaction.atomic():
        payment = _locked(order_id)
        if payment.status in COMPENSATING:
            resume = True
        elif payment.status in (S.AUTHORIZED, S.CAPTURING):
            resume = False
            _set(payment, S.CAPTURING)
        else:
            claim_message(event_id, handler)
            return
    if resume:
        _compensate(order_id, event_id, handler)
        return
    response = gateway.capture(
        key=payment.key("capture"), reference=order_id, authorization_id=payment.authorization_id, amount=payment.amount
    )
    with transaction.atomic():
        compensate = _record_capture(_locked(order_id), response, payload)
        if not compensate:
            claim_message(event_id, handler)
    if compensate:
        _compensate(order_id, event_id, handler)


def _record_capture(payment: Payment, response: gateway.GatewayResponse, payload: dict[str, Any]) -> bool:
    """Record the capture's answer on the locked payment; True when a void or refund must follow."""
    if payment.status != S.CAPTURING:
        return False
    if not response.approved:
        _set(payment, S.VOIDING, decline_code=response.decline_code)
        reason = response.decline_code.replace("_", " ")
        emit(
            "payment.capture_failed",
            order_id=payment.order_id,
            payload={"reason": f"payment capture declined: {reason}"},
            message=f"Payment capture declined ({reason})",
        )
        return True
    _set(payment, S.REFUNDING if payment.cancel_requested else S.CAPTURED)
    emit(
        "payment.captured",
        order_id=payment.order_id,
        payload={"address": payload.get("address") or {}},
        message=f"Payment captured: {payment.currency} {payment.amount}",
    )
    return payment.status == S.REFUNDING


def payment_cancel(*, event_id: str, order_id: str, handler: str) -> None:
    """The order was cancelled: undo whatever the payment did, now or when its in-flight call ends."""
    if already_processed(event_id, handler):
        return
    with transaction.atomic():
        payment = _locked(order_id)
        if payment.status == S.PENDING:
            _set(payment, S.CANCELLED)  # a later authorisation message finds this and does nothing
        elif payment.status in (S.AUTHORIZING, S.CAPTURING):
            _set(payment, payment.status, cancel_requested=True)
        elif payment.status in (S.AUTHORIZED, S.FAILED):
            _set(payment, S.VOIDING, cancel_requested=True)
        elif payment.status == S.CAPTURED:
            _set(payment, S.REFUNDING, cancel_requested=True)
        if payment.status not in COMPENSATING:
            claim_message(event_id, handler)
            return
    _compensate(order_id, event_id, handler)


def _compensate(order_id: str, event_id: str, handler: str) -> None:
    """Finish a void or refund that was committed as intended (idempotent, resumable).

    Each round decides from the locked row: nothing to do if the payment is no longer
    compensating (another copy finished). The gateway's answer is recorded only if the
    row still says what the round acted on; an authorisation that became known meanwhile
    gets a round of its own. The gateway keys make a repeated void or refund harmless.
    """
    for _ in range(3):
        with transaction.atomic():
            payment = _locked(order_id)
            if payment.status not in COMPENSATING:
                claim_message(event_id, handler)
                return
        final, kind, text, auth_id = _call_gateway(payment)
        with transaction.atomic():
            locked = _locked(order_id)
            if locked.status not in COMPENSATING:
                claim_message(event_id, handler)
                return
            if locked.status == payment.status and locked.authorization_id in ("", auth_id):
                _set(locked, final, authorization_id=auth_id)
                emit(kind, order_id=order_id, message=text)
                claim_message(event_id, handler)
                return
    raise CompensationPending(f"payment {order_id}: the compensation kept changing under it")


def _call_gateway(payment: Payment) -> tuple[str, str, str, str]:
    """Void or refund at the gateway: (final status, event, message, authorization id)."""
    order_id = payment.order_id
    try:
        auth_id = payment.authorization_id or gateway.find_authorization(key=payment.key("authorize"))
        if payment.status == S.VOIDING:
            if auth_id:
                gateway.void(key=payment.key("void"), reference=order_id, authorization_id=auth_id)
            return S.VOIDED, "payment.voided", "Authorisation voided" if auth_id else "No authorisation to void", auth_id
        response = gateway.refund(key=payment.key("refund"), reference=order_id, authorization_id=auth_id, amount=payment.amount)
    except (gateway.GatewayTimeout, gateway.GatewayUnavailable) as exc:
        raise CompensationPending(f"payment {order_id}: {payment.status} did not complete: {exc}") from exc
    if not response.approved:
        raise CompensationRefused(f"payment {order_id}: refund refused by the gateway ({response.decline_code})")
    return S.REFUNDED, "payment.refunded", f"Refunded {payment.currency} {payment.amount}", auth_id
