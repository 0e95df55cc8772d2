from celery import shared_task

from inventory import services
from shop.pipeline.task import PipelineTask


@shared_task(bind=True, base=PipelineTask)
def reserve_stock(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    services.stock_reserve(event_id=event_id, order_id=order_id, lines=payload["lines"], handler=self.name)


@shared_task(bind=True, base=PipelineTask)
def release_stock(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """Compensation for a cancelled order."""
    services.stock_release(event_id=event_id, order_id=order_id, handler=self.name)


@shared_task(bind=True, base=PipelineTask)
def commit_stock(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    services.stock_commit(event_id=event_id, order_id=order_id, handler=self.name)
