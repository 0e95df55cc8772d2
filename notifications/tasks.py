from celery import shared_task

from notifications import services
from shop.pipeline.task import PipelineTask


@shared_task(bind=True, base=PipelineTask)
def send_order_email(self: PipelineTask, event_id: str, kind: str, order_id: str, payload: dict) -> None:
    """One email per order and kind: received, shipped, cancelled.

    A mail server that refused or never received the email is retried with the
    pipeline's backoff. A claim held by another delivery is looked at again,
    sooner at first, and never later than when it would be stale (in doubt).
    """
    try:
        services.email_send(event_id=event_id, event=kind, order_id=order_id, payload=payload, handler=self.name)
    except services.EmailBeingSent as exc:
        raise self.retry(exc=exc, countdown=min(exc.retry_in + 0.5, 2**self.request.retries)) from exc
