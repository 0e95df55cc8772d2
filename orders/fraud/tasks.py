from celery import shared_task

from orders.fraud import services
from shop.pipeline.task import PipelineTask


@shared_task(bind=True, base=PipelineTask)
def screen_order(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    services.fraud_screen(event_id=event_id, order_id=order_id, payload=payload, handler=self.name)


@shared_task(ignore_result=True)
def expire_reviews() -> int:
    """Beat: cancel the orders whose fraud review outlived its deadline (a DB sweep, never a countdown)."""
    return services.fraud_expire_reviews()
