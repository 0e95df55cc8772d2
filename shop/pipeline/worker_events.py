"""The workers' task events go out without publisher confirms; their tasks' messages keep them.

A worker sends three task events per task (received, started, succeeded) for Flower. On
RabbitMQ every connection of the app is opened with ``confirm_publish`` (``settings.py``), and
Celery opens the event dispatcher's connection like any other, so py-amqp waited for the
broker's confirm after each event, in the worker's main process, between handing tasks to its
pool: ``py-spy`` of the orders, payments and notifications workers during ``bench saturate``
found a quarter to a third of their main processes' busy samples there. An event is
monitoring, published transient to Flower's auto-deleted queue: a confirm says nothing that a
restart would keep, and waiting for it only delays the next task.

:class:`Consumer` (``CELERY_WORKER_CONSUMER``) opens that one connection without
``confirm_publish``. In Celery 5.7 the consumer's ``connection_for_write`` serves the event
dispatcher alone (``celery/worker/consumer/events.py``); a task's retry, published with
``apply_async`` through the app's producer pool, stays confirmed, and
``tests/test_worker_events.py`` checks both on a running worker.
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer


class Consumer(CeleryConsumer):
    def connection_for_write(self, url: str | None = None, heartbeat: float | None = None) -> Any:
        """The event dispatcher's connection: the app's transport options, less the confirms
        (the embedded broker has none to drop)."""
        options = dict(self.app.conf.broker_transport_options or {})
        if "confirm_publish" in options:
            options["confirm_publish"] = False
        return self.ensure_connected(self.app.connection_for_write(url=url, heartbeat=heartbeat, transport_options=options))
