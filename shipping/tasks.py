from celery import shared_task

from shipping import services
from shop.pipeline.task import PipelineTask


@shared_task(bind=True, base=PipelineTask)
def create_shipment(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """On payment.captured: hand the parcel to the carrier."""
    services.shipment_create(event_id=event_id, order_id=order_id, payload=payload, handler=self.name)


@shared_task(bind=True, base=PipelineTask)
def cancel_shipment(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """Compensation for a cancelled order."""
    services.shipment_cancel(event_id=event_id, order_id=order_id, handler=self.name)


@shared_task(ignore_result=True)
def poll_carrier() -> int:
    """Beat, every second: carrier updates arrive as events."""
    return services.shipments_sync()
