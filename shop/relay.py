"""The outbox relay: publish committed events to the broker, then mark them published.

Claim a batch with ``FOR UPDATE SKIP LOCKED`` in a short transaction (a lease,
so several relays share the work and a dead relay's rows come back), publish
each event to every subscriber in the pipeline map with publisher confirms, and
mark the rows only after the broker acknowledged them. A relay killed between
publish and mark publishes again after the lease expires: consumers are
idempotent, so that is a duplicate delivery, never a lost event.

It wakes on ``LISTEN outbox`` (the insert trigger notifies at commit) and sweeps
every ``OUTBOX_SWEEP_SECONDS`` anyway, because a notification is lost while
the listener is disconnected.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

from shop import faults
from shop.deadletters import drain_broker
from shop.events import subscribers
from shop.models import OutboxEvent
from shop.request_context import bind_request_id, reset_request_id

log = logging.getLogger("shop.relay")
DRAIN_SECONDS = 5.0


def _table() -> str:
    return OutboxEvent._meta.db_table


def claim_batch(relay_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """Lease up to ``limit`` unpublished rows to this relay (autocommit: one short transaction)."""
    sql = f"""
        UPDATE {_table()} SET claimed_by = %s,
               claimed_until = now() + make_interval(secs => %s),
               publish_attempts = publish_attempts + 1
         WHERE id IN (SELECT id FROM {_table()}
                       WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
                       ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
        RETURNING id, event_id, kind, order_id, payload, request_id, target_task"""
    with connection.cursor() as cur:
        cur.execute(sql, [relay_id, settings.OUTBOX_CLAIM_SECONDS, limit])
        cols = [c.name for c in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    for row in rows:  # Django leaves jsonb undecoded on raw cursors
        if isinstance(row["payload"], str):
            row["payload"] = json.loads(row["payload"])
    rows.sort(key=lambda r: r["id"])
    return rows


def messages_for(row: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(task, queue, message id, kwargs) for each subscriber of the row's event."""
    from shop.events import task_queues

    if row["target_task"]:
        kwargs = dict(row["payload"]["kwargs"])
        task = row["target_task"]
        return [(task, task_queues()[task], f"{kwargs['event_id']}:{task}:replay{row['id']}", kwargs)]
    kwargs = {
        "event_id": str(row["event_id"]),
        "kind": row["kind"],
        "order_id": row["order_id"],
        "payload": row["payload"],
    }
    return [(s.task, s.queue, f"{row['event_id']}:{s.task}", kwargs) for s in subscribers(row["kind"])]


def publish(row: dict[str, Any]) -> None:
    """Publish one event to each subscriber; returns only once the broker confirmed every copy."""
    copies = 2 if faults.enabled("duplicate_publish") else 1
    token = bind_request_id(row["request_id"] or None)  # the relay's own log lines name the request too
    try:
        _publish_copies(row, copies)
    finally:
        reset_request_id(token)


def _publish_copies(row: dict[str, Any], copies: int) -> None:
    from shop.celery import app

    for task, queue, message_id, kwargs in messages_for(row):
        for _ in range(copies):
            app.tasks[task].apply_async(
                kwargs=kwargs,
                task_id=message_id,
                queue=queue,
                headers={"request_id": row["request_id"] or None},
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
            )


def mark_published(relay_id: str, ids: list[int]) -> None:
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {_table()} SET published_at = now(), claimed_by = '', claimed_until = NULL, last_error = '' "
            "WHERE id = ANY(%s) AND claimed_by = %s",
            [ids, relay_id],
        )


def release_failed(relay_id: str, ids: list[int], error: str, retry_in: float) -> None:
    """Give the rows back with a short lease so they are tried again soon, by any relay."""
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {_table()} SET last_error = %s, claimed_by = '', "
            "claimed_until = now() + make_interval(secs => %s) WHERE id = ANY(%s) AND claimed_by = %s",
            [error[:2000], retry_in, ids, relay_id],
        )


def relay_once(relay_id: str, limit: int = 100) -> int:
    """Claim, publish and mark one batch; returns how many events were published."""
    rows = claim_batch(relay_id, limit)
    done: list[int] = []
    try:
        for i, row in enumerate(rows):
            try:
                publish(row)
            except Exception as exc:  # broker down, connection lost, nack
                log.warning("publish of %s for order %s failed: %r", row["kind"], row["order_id"], exc)
                release_failed(relay_id, [r["id"] for r in rows[i:]], repr(exc), retry_in=1.0)
                break
            done.append(row["id"])
        if done and faults.enabled("relay_crash_after_publish"):
            log.error("fault: relay killed between publish and mark")
            os.kill(os.getpid(), signal.SIGKILL)
    finally:
        if done:
            mark_published(relay_id, done)
    return len(done)


class Listener:
    """A dedicated autocommit connection that LISTENs, so waiting never holds Django's connection."""

    def __init__(self, channel: str = "outbox") -> None:
        self.channel = channel
        self.conn: psycopg.Connection | None = None

    def _connect(self) -> psycopg.Connection:
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        conn = psycopg.connect(**params, autocommit=True)
        conn.execute(f"LISTEN {self.channel}")
        return conn

    def wait(self, timeout: float) -> None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = self._connect()
            for _ in self.conn.notifies(timeout=timeout, stop_after=1):
                break
        except psycopg.Error as exc:
            log.warning("LISTEN connection lost (%r); polling until it is back", exc)
            self.close()
            time.sleep(timeout)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


def run(stop: threading.Event | None = None, *, batch: int = 100) -> None:
    """Relay until ``stop`` is set."""
    stop = stop or threading.Event()
    relay_id = f"{socket.gethostname()}:{os.getpid()}"
    listener = Listener()
    log.info("relay %s started", relay_id)
    backoff = 0.5
    next_drain = 0.0
    while not stop.is_set():
        try:
            while relay_once(relay_id, batch) == batch and not stop.is_set():
                pass
            if time.monotonic() >= next_drain:
                next_drain = time.monotonic() + DRAIN_SECONDS
                if moved := drain_broker():
                    log.warning("parked %d message(s) dead-lettered by the broker", moved)
            backoff = 0.5
        except Exception as exc:  # the database is away: wait and reconnect
            log.warning("relay pass failed: %r", exc)
            connection.close()
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        listener.wait(settings.OUTBOX_SWEEP_SECONDS)
    listener.close()
    log.info("relay %s stopped", relay_id)
