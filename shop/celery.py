"""The Celery app, bootstrapped as Celery's Django guide shows."""

import atexit
import gc
import math
import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")


def whole_seconds(countdown: float | None) -> int | None:
    """A countdown that kombu's native delayed delivery accepts: it counts whole seconds and
    refuses anything under one (``int(0.5)`` is 0: ``ValueError: countdown must be a positive
    number``), which fails the retry itself and parks a message that only had to wait. Rounded
    up, so a retry never comes back sooner than asked."""
    if countdown is None or countdown <= 0:
        return None
    return max(1, math.ceil(countdown))


class ShopCelery(Celery):
    """Celery, with every countdown in whole seconds: quorum queues delay a retry through
    kombu's delayed-delivery exchanges, whose levels are whole seconds. Every path that
    publishes (``apply_async``, ``retry``, ``send_task``) comes through here."""

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, countdown: float | None = None, **options: Any) -> Any:
        return super().send_task(name, args, kwargs, countdown=whole_seconds(countdown), **options)


app = ShopCelery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker answers the ``shop_queues`` inspect command (pausing and resuming a stage).
import shop.pipeline.consumers  # noqa: E402, F401


@signals.worker_ready.connect
def _declare_dead_letters(sender, **kwargs) -> None:
    """The dead-letter exchange and queue must exist before RabbitMQ has anything to put there."""
    from shop.pipeline.queues import declare_dead_letters, is_rabbitmq

    if is_rabbitmq(app.conf.broker_url):
        with app.connection_for_write() as conn:
            declare_dead_letters(conn)


def _skip_the_collections_at_exit() -> None:
    """Leave every object out of the garbage collections of Python's finalization.

    Finalization collects the whole heap several times before and while it tears the modules
    down: about a second of CPU for a process with Django and Celery loaded, measured, so the
    demo's dozen processes took 4-5 s to stop on two cores after their work was done. Python
    promises no ``__del__`` for objects still alive at exit, and the operating system takes the
    memory back: frozen, a process exits in a few hundredths of a second. Registered when the
    app is imported, which every process of the shop does (``shop/__init__.py``), so it runs
    after the atexit hooks registered later (those run first) and before the finalization.
    """
    gc.freeze()


atexit.register(_skip_the_collections_at_exit)


# How long a pool child that is exiting waits for the worker to read the results it sent
# (billiard's default: 300 x 0.1 s). At a warm shutdown the worker drops the jobs it had sent
# a child but not yet seen accepted (the broker redelivers them) and then reads no more
# results, so a child that ran one of them waited the full 30 s: the demo's supervisor (8 s)
# and compose (10 s) SIGKILLed the worker. A child whose worker still reads takes milliseconds.
POOL_CHILD_EXIT_WAIT_SECONDS = 2.0


@signals.celeryd_init.connect
def _bound_pool_child_exit_wait(sender=None, **kwargs) -> None:
    """Before the pool forks: its children inherit the bound."""
    import billiard.pool

    interval = billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_INTERVAL
    billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT = max(1, round(POOL_CHILD_EXIT_WAIT_SECONDS / interval))


@signals.celeryd_init.connect
def _step_aside(sender=None, options=None, **kwargs) -> None:
    """Before the worker forks its pool: run at the niceness of the queues it serves, so the
    web server's checkouts, then the critical stages, get the cores first in a spike."""
    from django.conf import settings
    from django.db.backends.signals import connection_created

    from shop.pipeline.priority import nice_own_backend, queues_option, step_aside, worker_niceness

    niceness = step_aside(worker_niceness(queues_option((options or {}).get("queues"))))
    if niceness > 0 and settings.NICE_DATABASE_BACKENDS:  # and the backends of its connections
        connection_created.connect(nice_own_backend, dispatch_uid="nice_own_backend")


@signals.worker_shutting_down.connect
def _stand_up(sender=None, **kwargs) -> None:
    """A worker asked to stop finishes its work at full priority (``restore_priority``)."""
    from shop.pipeline.priority import restore_priority

    restore_priority()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _check_connections(sender=None, **kwargs) -> None:
    """Health-check and age the worker's persistent connection around each task, as Django
    does around each request: one broken by a database restart is replaced before the next
    task's first query instead of failing it (``CELERY_DB_REUSE_MAX`` keeps Celery's fix-up
    from closing the connection instead). Eager tasks run inside the caller's transaction."""
    if not getattr(getattr(sender, "request", None), "is_eager", False):
        from django.db import close_old_connections

        close_old_connections()
