from celery import shared_task

from orders import services
from shop.pipeline.task import PipelineTask


@shared_task(base=PipelineTask)
def apply_order_event(event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """The order's state machine: join the steps' results."""
    services.order_apply_event(event_id=event_id, kind=kind, order_id=order_id, payload=payload)
