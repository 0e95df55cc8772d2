from celery import shared_task

from notifications import services
from shop.pipeline_task import PipelineTask


@shared_task(bind=True, base=PipelineTask)
def send_order_email(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """One email per order and kind: received, shipped, cancelled."""
    services.email_send(event_id=event_id, event=kind, order_id=order_id, payload=payload, handler=self.name)
