"""Pausing and resuming a stage's consumers, by Celery's remote control.

Staff hold a stage during an incident (its messages wait on the queue, its backlog grows where
everyone can see it) and let it drain afterwards. Pausing sends ``cancel_consumer(queue)`` to
the workers consuming the queue now; resuming sends ``add_consumer(queue)`` to the workers that
were started for that queue (their ``-Q``) and are not consuming it: never to a worker of
another stage, which would then run this stage's tasks. Each command waits at most ``timeout``
seconds for the workers' replies, and the result names the workers that answered.

Which workers a queue belongs to is asked of the workers themselves with one broadcast of
:func:`shop_queues`, an inspect command registered here (``shop/celery.py`` imports this module,
so every worker has it): each worker answers with the queues it was started for and the ones it
consumes now (what ``inspect().active_queues()`` lists). A queue is paused when a worker that
was started for it no longer consumes it and none does.

Broadcast and replies are ordinary messages on a fanout exchange and a reply queue, which
RabbitMQ and the embedded filesystem broker (``shop/local/fs_transport/``, kombu's filesystem
transport keeps fanout) both carry; ``tests/test_consumers.py`` pauses and resumes on each.
A worker that does not answer within the timeout (busy past it, or gone) is reported, not
guessed at; a pause lasts until a resume or the worker's restart (it then consumes its ``-Q``).
Each pause is recorded (``QueuePause``: who, when, on which workers; who resumed it), so the
operations page names who holds a stage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import current_app as app  # the project's app (shop/celery.py), without importing the project
from celery import signals
from celery.worker.control import inspect_command
from django.utils import timezone

from shop.pipeline.events import QUEUES

log = logging.getLogger("shop.consumers")
DEFAULT_TIMEOUT = 2.0
_home: list[str] = []  # in a worker: the queues it was started to consume


class RemoteControlError(RuntimeError):
    """The workers could not be asked, or none that could act answered: nothing was changed."""


@dataclass(frozen=True)
class QueueState:
    """Who consumes a queue now, and which of the workers started for it have been paused."""

    queue: str
    consuming: tuple[str, ...]
    paused: tuple[str, ...]

    @property
    def is_paused(self) -> bool:
        return bool(self.paused) and not self.consuming


@dataclass(frozen=True)
class ConsumerChange:
    """A pause or resume: the workers asked, and those that answered that they did it."""

    queue: str
    action: str
    asked: tuple[str, ...]
    answered: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(w for w in self.asked if w not in self.answered)


@signals.worker_ready.connect
def _remember_home_queues(sender: Any = None, **kwargs: Any) -> None:
    """Record the worker's own queues once it consumes them, before any pause can change them."""
    _home[:] = sorted(sender.app.amqp.queues.consume_from or sender.app.amqp.queues)


@inspect_command()
def shop_queues(state: Any) -> dict[str, list[str]]:
    """This worker's queues: ``home`` (started for) and ``active`` (consumed now)."""
    consumer = state.consumer.task_consumer
    active = sorted(q.name for q in consumer.queues) if consumer else []
    return {"home": list(_home) or active, "active": active}


def _check(queue: str) -> None:
    if queue not in QUEUES:
        raise ValueError(f"{queue!r} is not a queue of the pipeline ({', '.join(QUEUES)})")


def _broadcast(command: str, **options: Any) -> list[dict[str, Any]]:
    """A broadcast on a connection of its own: a broker restarted since this process last spoke
    to it leaves dead connections in the app's pool, and a broadcast on one of them is reset
    (seen in CI after a broker restart). Staff actions are rare; a new connection costs little."""
    with app.connection_for_write() as conn:
        return app.control.broadcast(command, connection=conn, **options) or []


def worker_queues(*, timeout: float = DEFAULT_TIMEOUT) -> dict[str, dict[str, list[str]]]:
    """Worker name -> its ``home`` and ``active`` queues, from every worker that answers in time."""
    try:
        replies = _broadcast("shop_queues", reply=True, timeout=timeout)
    except Exception as exc:  # the broker is away: say so, rather than report every queue unconsumed
        raise RemoteControlError(f"could not ask the workers (broker unreachable?): {exc!r}") from exc
    answers: dict[str, dict[str, list[str]]] = {}
    for reply in replies:
        for worker, body in reply.items():
            if isinstance(body, dict) and "active" in body:
                answers[worker] = body
    return answers


def queue_states(*, timeout: float = DEFAULT_TIMEOUT) -> dict[str, QueueState]:
    """Every pipeline queue's consumers and paused workers (one broadcast, ``timeout`` long)."""
    workers = worker_queues(timeout=timeout)
    return {queue: _state(queue, workers) for queue in QUEUES}


def queue_state(queue: str, *, timeout: float = DEFAULT_TIMEOUT) -> QueueState:
    _check(queue)
    return _state(queue, worker_queues(timeout=timeout))


def _state(queue: str, workers: dict[str, dict[str, list[str]]]) -> QueueState:
    consuming = tuple(sorted(w for w, q in workers.items() if queue in q["active"]))
    paused = tuple(sorted(w for w, q in workers.items() if queue in q["home"] and queue not in q["active"]))
    return QueueState(queue, consuming, paused)


def pause_queue(queue: str, *, staff: str, timeout: float = DEFAULT_TIMEOUT) -> ConsumerChange:
    """Stop every worker consuming ``queue`` from taking its messages (tasks running finish)."""
    state = queue_state(queue, timeout=timeout)
    if not state.consuming:
        already = f"; paused on {', '.join(state.paused)}" if state.paused else ""
        raise RemoteControlError(f"no worker consumes {queue} now{already}")
    change = _send("cancel_consumer", queue, state.consuming, timeout)
    from shop.pipeline.models import QueuePause  # here: shop/celery.py imports this module before Django's apps load

    QueuePause.objects.create(queue=queue, paused_by=staff, workers=", ".join(change.answered)[:500])
    log.warning("%s paused queue %s: %s answered (asked %s)", staff, queue, change.answered, change.asked)
    return change


def resume_queue(queue: str, *, staff: str, timeout: float = DEFAULT_TIMEOUT) -> ConsumerChange:
    """Let the paused workers of ``queue`` consume it again; its waiting messages drain."""
    state = queue_state(queue, timeout=timeout)
    if not state.paused:
        raise RemoteControlError(f"{queue} is not paused on any worker that answered")
    change = _send("add_consumer", queue, state.paused, timeout)
    from shop.pipeline.models import QueuePause

    QueuePause.objects.filter(queue=queue, resumed_at__isnull=True).update(resumed_by=staff, resumed_at=timezone.now())
    log.warning("%s resumed queue %s: %s answered (asked %s)", staff, queue, change.answered, change.asked)
    return change


def _send(command: str, queue: str, workers: tuple[str, ...], timeout: float) -> ConsumerChange:
    action = "pause" if command == "cancel_consumer" else "resume"
    try:
        replies = _broadcast(
            command, arguments={"queue": queue}, destination=list(workers), reply=True, timeout=timeout, limit=len(workers)
        )
    except Exception as exc:
        raise RemoteControlError(f"could not {action} {queue}: {exc!r}") from exc
    answered = tuple(sorted(w for reply in replies or [] for w, body in reply.items() if "ok" in (body or {})))
    if not answered:
        raise RemoteControlError(f"no worker answered the {action} of {queue} within {timeout:g} s (asked {', '.join(workers)})")
    return ConsumerChange(queue, action, workers, answered)
