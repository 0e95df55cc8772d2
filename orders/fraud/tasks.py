from celery import shared_task

from orders.fraud import services
from shop.pipeline_task import PipelineTask


@shared_task(bind=True, base=PipelineTask)
def screen_order(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    services.fraud_screen(event_id=event_id, order_id=order_id, payload=payload, handler=self.name)
