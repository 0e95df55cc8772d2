"""Backlog figures: what waits in the broker's queues, in each handler, and in the outbox.

Three views of one question, "how far behind is the pipeline?", each from the place that
knows it: the broker counts the messages ready in each queue, the database knows which
published events a handler has not processed yet (and since when), and the outbox holds
the events the relay has not published. Every figure is cheap enough to take once a second
while the shop is under load: no ``rabbitmqctl`` (a CLI start costs about 0.66 CPU-s), one
broker connection kept open, and one indexed SQL query per figure.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from kombu import Connection

from shop.pipeline.events import ORDER_STEP, PIPELINE, QUEUES
from shop.pipeline.models import DeadLetter, OutboxEvent, ProcessedMessage
from shop.pipeline.queues import DEAD_LETTER_QUEUE, is_rabbitmq

# Every queue the pipeline reads from, and the one where the broker parks poison messages.
PROBED_QUEUES: tuple[str, ...] = (*QUEUES, DEAD_LETTER_QUEUE)

# The name a handler records in ProcessedMessage.handler is its task's name (every task passes
# ``handler=self.name``), but for the order's state machine, which records under its own
# constant (``orders.services.HANDLER``; tests/test_backlog.py checks the two agree).
RECORDED_AS: dict[str, str] = {ORDER_STEP: "orders.apply_order_event"}

# Events older than this are left out of the subscription backlog: the query stays bounded
# on a table that only grows. A message that has waited longer is reported by the broker's depth.
DEFAULT_WINDOW_S = 600.0


def handler_for(task: str) -> str:
    """The ``ProcessedMessage.handler`` value a task's handler records when it is done."""
    return RECORDED_AS.get(task, task)


class BrokerProbe:
    """Reads the broker's own message counts over one connection, kept open between calls.

    On RabbitMQ each queue is declared passively (which returns its ready messages and
    consumers and creates nothing); a broken connection is dropped and opened again on the
    next call. On the embedded filesystem broker the message files of each queue are counted.
    """

    def __init__(self, broker_url: str | None = None, transport_options: dict[str, Any] | None = None) -> None:
        self.url = broker_url or settings.CELERY_BROKER_URL
        self.rabbitmq = is_rabbitmq(self.url)
        self.source = "rabbitmq" if self.rabbitmq else "filesystem"
        self.options = transport_options if transport_options is not None else settings.CELERY_BROKER_TRANSPORT_OPTIONS
        self._conn: Connection | None = None
        self._channel: Any = None

    def depths(self, queues: tuple[str, ...] = PROBED_QUEUES) -> dict[str, dict[str, Any]]:
        """``{queue: {"depth": ready messages, "consumers": n or None, "source": ...}}``."""
        if not self.rabbitmq:
            return filesystem_depths(Path(self.options["data_folder_in"]), queues)
        try:
            return {queue: self._declare(queue) for queue in queues}
        except Exception:  # a dropped connection: one fresh try, then the error is the caller's
            self.close()
            return {queue: self._declare(queue) for queue in queues}

    def _declare(self, queue: str) -> dict[str, Any]:
        channel = self._open_channel()
        try:
            _, depth, consumers = channel.queue_declare(queue=queue, passive=True)
        except channel.connection.channel_errors:  # 404: no such queue (the broker closed the channel)
            self._channel = None
            return {"depth": None, "consumers": None, "source": self.source, "missing": True}
        return {"depth": depth, "consumers": consumers, "source": self.source}

    def _open_channel(self) -> Any:
        if self._conn is None:
            self._conn = Connection(self.url, connect_timeout=5, transport_options={"confirm_publish": False})
            self._conn.ensure_connection(max_retries=1)
        if self._channel is None:
            self._channel = self._conn.channel()
        return self._channel

    def close(self) -> None:
        """Close the connection (safe to call twice, and after the broker went away)."""
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except (OSError, *conn.connection_errors):
                pass

    def __enter__(self) -> BrokerProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def filesystem_depths(queue_folder: Path, queues: tuple[str, ...] = PROBED_QUEUES) -> dict[str, dict[str, Any]]:
    """Count the ready messages of the embedded broker: the files ``<time>_<uuid>.<queue>.msg``
    in its queue folder (a claimed message has moved to ``claimed/``, so it is not counted,
    as RabbitMQ does not count unacked ones). The broker keeps no list of consumers."""
    counts = dict.fromkeys(queues, 0)
    with os.scandir(queue_folder) as entries:
        for entry in entries:
            queue = entry.name.partition(".")[2].removesuffix(".msg")
            if queue in counts:
                counts[queue] += 1
    return {queue: {"depth": n, "consumers": None, "source": "filesystem"} for queue, n in counts.items()}


def queue_depths(broker_url: str | None = None) -> dict[str, dict[str, Any]]:
    """The broker's counts for every queue, over a connection of its own (closed on return).

    A caller that asks every second keeps a :class:`BrokerProbe` open instead.
    """
    with BrokerProbe(broker_url) as probe:
        return probe.depths()


def _backlog_sql(subscription_count: int) -> str:
    """One pass over the window's events, grouped by subscription. A copy counts while its handler
    has no ``ProcessedMessage`` for the event (``message_id`` is the event id: the message id
    ``"<event id>:<task>"`` only names the copy) and no dead letter holds it parked (parked, it
    waits for staff, not in a queue). Both probes are lookups in unique indexes."""
    values = ", ".join(["(%s, %s, %s, %s)"] * subscription_count)
    return f"""
        WITH subs(kind, task, handler, queue) AS (VALUES {values})
        SELECT s.kind, s.task, count(*), min(e.published_at), min(e.created_at)
          FROM {OutboxEvent._meta.db_table} e JOIN subs s ON s.kind = e.kind
         WHERE e.created_at >= %s AND e.published_at IS NOT NULL AND e.target_task = ''
           AND NOT EXISTS (SELECT 1 FROM {ProcessedMessage._meta.db_table} p
                            WHERE p.message_id = e.event_id AND p.handler = s.handler)
           AND NOT EXISTS (SELECT 1 FROM {DeadLetter._meta.db_table} d
                            WHERE d.message_id = e.event_id::text AND d.task = s.task AND d.status = %s)
         GROUP BY s.kind, s.task"""


def subscription_backlog(
    now: datetime | None = None, *, window_s: float = DEFAULT_WINDOW_S, since: datetime | None = None
) -> list[dict[str, Any]]:
    """For each subscription of the pipeline map: the published events of its kind that its
    handler has not processed yet, counted, with the age of the oldest (since its publication).

    Only events created in the last ``window_s`` seconds (or since ``since``, when later) are
    looked at, so that the query reads a bounded slice of the outbox (its ``created_at`` index)
    however large it grows; :class:`BacklogTracker` narrows the slice for a caller that asks again.
    Replays (rows with a ``target_task``) are left out: the original event counts again
    while its dead letter is no longer parked, until the replayed copy is processed.
    """
    now = now or timezone.now()
    params: list[Any] = []
    for sub in PIPELINE:
        params += [sub.event, sub.task, handler_for(sub.task), sub.queue]
    start = now - timedelta(seconds=window_s)
    params += [max(start, since) if since else start, DeadLetter.Status.PARKED]
    with connection.cursor() as cur:
        cur.execute(_backlog_sql(len(PIPELINE)), params)
        found = {(kind, task): rest for kind, task, *rest in cur.fetchall()}
    rows = []
    for sub in PIPELINE:
        count, oldest, created = found.get((sub.event, sub.task), (0, None, None))
        rows.append(
            {
                "event": sub.event,
                "task": sub.task,
                "queue": sub.queue,
                "count": count,
                "oldest_published_at": oldest,
                "oldest_created_at": created,
                "oldest_age_s": max(0.0, (now - oldest).total_seconds()) if oldest else None,
            }
        )
    return rows


def backlog_by_queue(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``subscription_backlog`` summed per queue: waiting copies and the oldest one's age."""
    queues: dict[str, dict[str, Any]] = {q: {"count": 0, "oldest_age_s": None} for q in QUEUES}
    for row in rows:
        entry = queues.setdefault(row["queue"], {"count": 0, "oldest_age_s": None})
        entry["count"] += row["count"]
        if row["oldest_age_s"] is not None:
            entry["oldest_age_s"] = max(entry["oldest_age_s"] or 0.0, row["oldest_age_s"])
    return queues


def outbox_backlog(now: datetime | None = None) -> dict[str, Any]:
    """Events the relay has yet to publish (neither published nor parked), the oldest one's age,
    and how many are parked for staff. Both counts are read from partial indexes."""
    now = now or timezone.now()
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"""SELECT (SELECT count(*) FROM {table} WHERE published_at IS NULL AND parked_at IS NULL),
                       (SELECT min(created_at) FROM {table} WHERE published_at IS NULL AND parked_at IS NULL),
                       (SELECT count(*) FROM {table} WHERE parked_at IS NOT NULL)"""
        )
        waiting, oldest, parked = cur.fetchone()
    return {
        "waiting": waiting,
        "oldest_created_at": oldest,
        "oldest_age_s": max(0.0, (now - oldest).total_seconds()) if oldest else None,
        "parked": parked,
    }


class BacklogTracker:
    """Asks :func:`outbox_backlog` and :func:`subscription_backlog` again and again, reading only
    the events created since the oldest one still open at the previous call (less a margin for
    transactions that commit late), instead of the whole window each time.

    Sound because an event still open now was, at the previous call, unpublished (then no
    older than the oldest unpublished one), open (then no older than the oldest open one), or
    not yet committed. Not covered: a parked outbox row or dead letter replayed between two
    calls, older than that bound; it is counted again once it is no older than the window.
    """

    def __init__(self, *, window_s: float = DEFAULT_WINDOW_S, margin_s: float = 5.0) -> None:
        self.window_s = window_s
        self.margin = timedelta(seconds=margin_s)
        self.since: datetime | None = None

    def sample(self, now: datetime | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``(subscription_backlog rows, outbox_backlog)``, the outbox read first (see above)."""
        now = now or timezone.now()
        outbox = outbox_backlog(now)
        rows = subscription_backlog(now, window_s=self.window_s, since=self.since)
        opened = [r["oldest_created_at"] for r in rows if r["oldest_created_at"]]
        self.since = min([*opened, outbox["oldest_created_at"] or now, now]) - self.margin
        return rows, outbox
