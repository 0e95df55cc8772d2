"""The figures of each queue: the broker's counts beside the handlers' own backlog, rates, dead
letters, and whether the stage is flagged.

Two sources, named in every row: ``broker`` (what the broker says: ready messages and
consumers, by passive declare on RabbitMQ, by counting files on the embedded broker, which keeps
no consumer count) and ``records`` (what the database says: published events whose handler has no
processed-message record yet, the oldest one's age, messages in and out over the last minute, dead
letters). The records give the same figure on either broker, and one a broker cannot give: a
message a stuck worker holds still counts.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count
from kombu.transport.native_delayed_delivery import MAX_LEVEL, level_name

from shop.pipeline.backlog import DEFAULT_WINDOW_S, PROBED_QUEUES, BrokerProbe, backlog_by_queue, handler_for
from shop.pipeline.events import PIPELINE, QUEUES, task_queues
from shop.pipeline.models import DeadLetter, OutboxEvent, ProcessedMessage, QueuePause
from shop.pipeline.queues import DEAD_LETTER_QUEUE

RATE_WINDOW_S = 60.0
RECENT_ROWS = 50_000  # processed-message rows read for the out rate: 833 a second, beyond the workers' ceiling
FAILURE_WINDOW_S = 300.0

# RabbitMQ holds a retried task's message in kombu's delay queues until its countdown has passed:
# what waits there is every queue's retries together (the levels do not say for which queue).
DELAY_QUEUES: tuple[str, ...] = tuple(level_name(level) for level in range(MAX_LEVEL + 1))

_probe_lock = threading.Lock()
_probe: BrokerProbe | None = None
_delays_absent_until = 0.0


def broker_counts() -> tuple[dict[str, dict[str, Any]], str | None]:
    """The broker's counts over one connection kept per process (streams and scrapes share it),
    the delay queues' too on RabbitMQ, and the error text when the broker could not be asked
    (the records still answer then)."""
    global _probe, _delays_absent_until
    with _probe_lock:
        if _probe is None:
            _probe = BrokerProbe()
        try:
            ask_delays = _probe.rabbitmq and time.monotonic() >= _delays_absent_until
            depths = _probe.depths((*PROBED_QUEUES, *(DELAY_QUEUES if ask_delays else ())))
            if ask_delays and all(depths[q].get("missing") for q in DELAY_QUEUES):
                _delays_absent_until = time.monotonic() + 30.0  # no worker declared them yet: ask again later
            return depths, None
        except Exception as exc:  # the broker is away: say so, keep the page alive
            _probe.close()
            return {}, f"{type(exc).__name__}: {exc}"


def broker_source() -> str:
    """``rabbitmq`` or ``filesystem``: which broker the counts come from."""
    return BrokerProbe().source


def _queue_of_handler() -> dict[str, str]:
    return {handler_for(sub.task): sub.queue for sub in PIPELINE}


def _published_by_kind(now: datetime, since: datetime) -> list[tuple[str, str, int]]:
    """Outbox rows published since ``since``, by kind and target: read within the backlog's
    window of creation times (the ``created_at`` index), not by a scan of ``published_at``."""
    window = now - timedelta(seconds=DEFAULT_WINDOW_S)
    rows = OutboxEvent.objects.filter(created_at__gte=window, published_at__gte=since)
    return list(rows.values_list("kind", "target_task").annotate(n=Count("id")))


def _handled_by_handler(since: datetime) -> list[tuple[str, int]]:
    """Processed-message records written since ``since``, by handler: the newest ``RECENT_ROWS``
    rows read backwards along the primary key (the table has no index on ``processed_at``;
    that bound is far above what the workers can process in a minute)."""
    table = ProcessedMessage._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"""SELECT handler, count(*) FROM (SELECT handler, processed_at FROM {table} ORDER BY id DESC LIMIT %s) t
                 WHERE processed_at >= %s GROUP BY handler""",
            [RECENT_ROWS, since],
        )
        return cur.fetchall()


def rates(now: datetime) -> tuple[dict[str, float], dict[str, float], float]:
    """Messages in (copies published to each queue) and out (handled) per second over the last
    minute, and the outbox's publish rate (events per second)."""
    since = now - timedelta(seconds=RATE_WINDOW_S)
    copies: dict[str, list[str]] = {}
    for sub in PIPELINE:
        copies.setdefault(sub.event, []).append(sub.queue)
    routes = task_queues()
    into = dict.fromkeys(QUEUES, 0)
    published = 0
    for kind, target, n in _published_by_kind(now, since):
        published += n
        for queue in [routes[target]] if target in routes else copies.get(kind, []):
            into[queue] = into.get(queue, 0) + n
    out = dict.fromkeys(QUEUES, 0)
    by_handler = _queue_of_handler()
    for handler, n in _handled_by_handler(since):
        if handler in by_handler:
            out[by_handler[handler]] += n
    per_s = lambda counts: {q: round(n / RATE_WINDOW_S, 2) for q, n in counts.items()}  # noqa: E731
    return per_s(into), per_s(out), round(published / RATE_WINDOW_S, 2)


def dead_letters(now: datetime) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Parked dead letters per task and per queue, and failures (dead letters written) per queue
    over the last five minutes."""
    by_task: dict[str, int] = {}
    by_queue = dict.fromkeys(QUEUES, 0)
    routes = task_queues()
    parked = DeadLetter.objects.filter(status=DeadLetter.Status.PARKED).values_list("task", "queue").annotate(n=Count("id"))
    for task, queue, n in parked:
        by_task[task] = by_task.get(task, 0) + n
        queue = queue or routes.get(task, "")
        if queue in by_queue:
            by_queue[queue] += n
    recent = dict.fromkeys(QUEUES, 0)
    since = now - timedelta(seconds=FAILURE_WINDOW_S)
    for task, queue, n in DeadLetter.objects.filter(created_at__gte=since).values_list("task", "queue").annotate(n=Count("id")):
        queue = queue or routes.get(task, "")
        if queue in recent:
            recent[queue] += n
    return by_task, by_queue, recent


def flag_reasons(row: dict[str, Any], stale_s: float) -> list[str]:
    """Why a queue is flagged red: its oldest waiting message is older than ``stale_s``, or it has
    waiting messages and the broker says nobody consumes it. Empty when it is fine."""
    reasons = []
    age = row["oldest_age_s"]
    if age is not None and age > stale_s:
        reasons.append(f"oldest message waiting {age:.0f} s (over {stale_s:.0f} s)")
    waiting = max(row["waiting"], row["ready"] or 0)
    if waiting and row["consumers"] == 0:
        reasons.append(f"{waiting} waiting and no consumer")
    return reasons


def open_pauses(now: datetime) -> dict[str, dict[str, Any]]:
    """Queue -> who paused it, when, and on which workers, for the pauses not yet resumed."""
    found = {}
    for pause in QueuePause.objects.filter(resumed_at__isnull=True).order_by("id"):
        age = (now - pause.paused_at).total_seconds()
        found[pause.queue] = {"by": pause.paused_by, "since": pause.paused_at.isoformat(), "age_s": age, "workers": pause.workers}
    return found


def pause_reason(pause: dict[str, Any] | None, consumers: int | None) -> str | None:
    """ "paused by ..." while a recorded pause holds; none once the broker counts a consumer again
    (a resume, or the worker's restart: it then consumes its queues from the start)."""
    if pause is None or (consumers or 0) > 0:
        return None
    return f"paused by {pause['by']} {pause['age_s']:.0f} s ago"


def queue_rows(rows: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """``queues``: every queue's figures; ``broker``: source, error, dead-letter queue depth and
    retries waiting; ``publish_per_s``: the outbox's publish rate (read with the queues' rates);
    ``dead_letters_by_task``: parked dead letters per task.

    ``rows`` is ``subscription_backlog``'s answer. In progress is what the handlers have not
    finished less what the broker still holds ready: taken by a worker, or waiting for a retry.
    """
    depths, error = broker_counts()
    backlog = backlog_by_queue(rows)
    into, out, publish_rate = rates(now)
    by_task, parked, recent = dead_letters(now)
    stale_s = settings.OPS_STALE_SECONDS
    pauses = open_pauses(now)
    queues: dict[str, dict[str, Any]] = {}
    for queue in QUEUES:
        counts = depths.get(queue, {})
        ready, waiting = counts.get("depth"), backlog[queue]["count"]
        row = {
            "ready": ready,
            "consumers": counts.get("consumers"),
            "waiting": waiting,
            "in_progress": max(0, waiting - (ready or 0)),
            "oldest_age_s": backlog[queue]["oldest_age_s"],
            "in_per_s": into.get(queue, 0.0),
            "out_per_s": out.get(queue, 0.0),
            "dead_letters": parked[queue],
            "failures_5m": recent[queue],
        }
        paused = pause_reason(pauses.get(queue), row["consumers"])
        row["paused"] = paused
        row["flags"] = ([paused] if paused else []) + flag_reasons(row, stale_s)
        row["flagged"] = bool(row["flags"])
        queues[queue] = row
    dlq = depths.get(DEAD_LETTER_QUEUE, {}).get("depth")
    broker = {"source": broker_source(), "error": error, "dead_letter_queue": dlq, "retries_waiting": retries_waiting(depths)}
    return {
        "queues": queues,
        "broker": broker,
        "publish_per_s": publish_rate,
        "dead_letters_by_task": by_task,
    }


def retries_waiting(depths: dict[str, dict[str, Any]]) -> int | None:
    """Retried messages waiting for their countdown in RabbitMQ's delay queues, all queues
    together; None where the broker does not say (the embedded broker: a worker holds them)."""
    found = [depths[q]["depth"] for q in DELAY_QUEUES if depths.get(q, {}).get("depth") is not None]
    return sum(found) if found else None
