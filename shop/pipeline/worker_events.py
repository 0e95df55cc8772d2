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

The events are also published in batches. Celery buffers a worker's task events and asks its
event loop to publish the buffer on the loop's next turn, so nearly every event went out as a
message of its own: three per task, each one a publish by the worker's main process, a
routing by RabbitMQ and a delivery to Flower. The buffer is now published
:data:`EVENT_FLUSH_SECONDS` after its first event (or when Celery's 24-event limit fills it),
as one ``task.multi`` message for every event of that quarter second. Flower learns of a task
that much later; a worker that stops warm publishes what it holds first.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

EVENT_FLUSH_SECONDS = 0.25


class Consumer(CeleryConsumer):
    _flush_due = 0.0  # when the scheduled publish of the buffered events runs (monotonic)

    def on_send_event_buffered(self) -> None:
        """An event joined the buffer: publish it with the others a quarter second from now,
        unless a publish is already due (a due time long past means its timer was lost with
        the event loop, on a reconnection: schedule another)."""
        now = time.monotonic()
        if self.hub is None or now < self._flush_due + EVENT_FLUSH_SECONDS:
            return
        self._flush_due = now + EVENT_FLUSH_SECONDS
        self.hub.call_later(EVENT_FLUSH_SECONDS, self._flush_buffered)

    def _flush_buffered(self) -> None:
        self._flush_due = 0.0
        self._flush_events()

    def shutdown(self) -> None:
        """Publish the buffered events before the dispatcher's connection closes with the rest."""
        with contextlib.suppress(Exception):
            self._flush_events()
        super().shutdown()

    def connection_for_write(self, url: str | None = None, heartbeat: float | None = None) -> Any:
        """The event dispatcher's connection: the app's transport options, less the confirms
        (the embedded broker has none to drop)."""
        options = dict(self.app.conf.broker_transport_options or {})
        if "confirm_publish" in options:
            options["confirm_publish"] = False
        return self.ensure_connected(self.app.connection_for_write(url=url, heartbeat=heartbeat, transport_options=options))
