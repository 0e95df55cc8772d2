from celery import shared_task

from orders.payments import services
from orders.payments.gateway import GatewayTimeout, GatewayUnavailable
from shop.pipeline.task import PipelineTask


@shared_task(bind=True, base=PipelineTask)
def authorize_payment(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """Authorise the card; after the last timeout or outage, give up so the order is cancelled and voided.

    Whichever gateway error the last attempt meets (a timeout, or a 503 between two
    timeouts), the customer's answer is the same: no payment, order cancelled. Only the
    authorisation call is given up on: a void that fails after a late approval raises
    ``CompensationPending``, which is retried and then parked like any failing step.
    """
    try:
        services.payment_authorize(event_id=event_id, order_id=order_id, payload=payload, handler=self.name)
    except (GatewayTimeout, GatewayUnavailable) as exc:
        if not self.is_last_attempt:
            raise
        reason = "payment gateway timed out" if isinstance(exc, GatewayTimeout) else "payment gateway unavailable"
        services.payment_abandon(event_id=event_id, order_id=order_id, reason=reason, handler=self.name)


@shared_task(bind=True, base=PipelineTask)
def capture_payment(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """On order.ready: take the money; the parcel is handed over only once it is taken."""
    services.payment_capture(event_id=event_id, order_id=order_id, payload=payload, handler=self.name)


@shared_task(bind=True, base=PipelineTask)
def cancel_payment(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """Compensation: void the authorisation or refund the capture."""
    services.payment_cancel(event_id=event_id, order_id=order_id, handler=self.name)
