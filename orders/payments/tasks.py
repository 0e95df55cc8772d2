from celery import shared_task

from orders.payments import services
from orders.payments.gateway import GatewayTimeout
from shop.pipeline_task import PipelineTask


@shared_task(bind=True, base=PipelineTask)
def authorize_payment(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """Authorise the card; after the last timeout, give up so the order is cancelled and voided."""
    try:
        services.payment_authorize(event_id=event_id, order_id=order_id, payload=payload, handler=self.name)
    except GatewayTimeout:
        if not self.is_last_attempt:
            raise
        services.payment_abandon(event_id=event_id, order_id=order_id, reason="payment gateway timed out", handler=self.name)


@shared_task(bind=True, base=PipelineTask)
def capture_payment(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    services.payment_capture(event_id=event_id, order_id=order_id, handler=self.name)


@shared_task(bind=True, base=PipelineTask)
def cancel_payment(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """Compensation: void the authorisation or refund the capture."""
    services.payment_cancel(event_id=event_id, order_id=order_id, handler=self.name)
