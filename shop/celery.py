"""The Celery app, bootstrapped as Celery's Django guide shows."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
def _declare_dead_letters(sender, **kwargs) -> None:
    """The dead-letter exchange and queue must exist before RabbitMQ has anything to put there."""
    from shop.pipeline.queues import declare_dead_letters, is_rabbitmq

    if is_rabbitmq(app.conf.broker_url):
        with app.connection_for_write() as conn:
            declare_dead_letters(conn)
