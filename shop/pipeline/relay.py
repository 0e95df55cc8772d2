"""The outbox relay: publish committed events to the broker, then mark them published.

Claim a batch of due rows with ``FOR UPDATE SKIP LOCKED`` in a short transaction (a lease,
so several relays share the work and a dead relay's rows come back), publish each event to
every subscriber in the pipeline map, the whole batch before waiting once for the broker's
publisher confirms, and mark the rows only after the broker confirmed every copy. A relay
killed between publish and mark publishes again after the lease expires: consumers are
idempotent, so that is a duplicate delivery, never a lost event.

Each row has its own ``next_attempt_at``: a row whose publish fails (a replay naming a task
this release does not have, a queue that nacks) backs off exponentially with jitter while
the rows behind it go on, and after ``OUTBOX_MAX_ATTEMPTS`` it is parked as a dead letter for
staff. When the broker itself is away no row is to blame: the batch is handed back uncounted.
A nack fails only the row whose message it names. Every wait for confirms is bounded by
``OUTBOX_CONFIRM_TIMEOUT``.

It wakes on ``LISTEN outbox`` (the insert trigger notifies at commit) and sweeps
every ``OUTBOX_SWEEP_SECONDS`` anyway, because a notification is lost while
the listener is disconnected.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import socket
import threading
import time
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from shop.pipeline import faults, heartbeat
from shop.pipeline.deadletters import RELAY_STEP, drain_broker, park
from shop.pipeline.models import OutboxEvent
from shop.pipeline.publisher import BatchOutcome, broker_unreachable, drop_producer, publish_batch

log = logging.getLogger("shop.relay")
DRAIN_SECONDS = 5.0
BROKER_AWAY_RETRY_SECONDS = 1.0


def _table() -> str:
    return OutboxEvent._meta.db_table


def claim_batch(relay_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due rows to this relay (autocommit: one short transaction).

    Due means ``next_attempt_at`` has passed: a row backing off after a failure, or leased to
    another relay, is not taken, so it never holds up the rows behind it.
    """
    sql = f"""
        UPDATE {_table()} SET claimed_by = %s,
               claimed_until = now() + make_interval(secs => %s),
               next_attempt_at = now() + make_interval(secs => %s),
               publish_attempts = publish_attempts + 1
         WHERE id IN (SELECT id FROM {_table()}
                       WHERE published_at IS NULL AND parked_at IS NULL AND next_attempt_at <= now()
                       ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED)
        RETURNING id, event_id, kind, order_id, payload, request_id, target_task, publish_attempts, created_at"""
    lease = settings.OUTBOX_CLAIM_SECONDS
    with connection.cursor() as cur:
        cur.execute(sql, [relay_id, lease, lease, limit])
        cols = [c.name for c in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    for row in rows:  # Django leaves jsonb undecoded on raw cursors
        if isinstance(row["payload"], str):
            row["payload"] = json.loads(row["payload"])
    rows.sort(key=lambda r: r["id"])
    return rows


def mark_published(relay_id: str, ids: list[int]) -> None:
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {_table()} SET published_at = now(), claimed_by = '', claimed_until = NULL, last_error = '' "
            "WHERE id = ANY(%s) AND claimed_by = %s",
            [ids, relay_id],
        )


def retry_delay(attempts: int) -> float:
    """Exponential backoff with jitter, capped: half the step is fixed, half random."""
    step = min(settings.OUTBOX_BACKOFF_MAX, settings.OUTBOX_BACKOFF_BASE * 2 ** max(attempts - 1, 0))
    return step / 2 + random.uniform(0, step / 2)


def release_untried(relay_id: str, ids: list[int], error: str) -> None:
    """The broker is away: give the rows back uncounted, due again shortly, to any relay."""
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {_table()} SET last_error = %s, claimed_by = '', claimed_until = NULL, "
            "publish_attempts = greatest(publish_attempts - 1, 0), "
            "next_attempt_at = now() + make_interval(secs => %s) WHERE id = ANY(%s) AND claimed_by = %s",
            [error[:2000], BROKER_AWAY_RETRY_SECONDS, ids, relay_id],
        )


def row_failed(relay_id: str, row: dict[str, Any], error: str) -> None:
    """This row failed while the broker is up: back it off alone, or park it after too many tries."""
    attempts = row["publish_attempts"]
    if attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        park_row(relay_id, row, error)
        return
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {_table()} SET last_error = %s, claimed_by = '', claimed_until = NULL, "
            "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s AND claimed_by = %s",
            [error[:2000], retry_delay(attempts), row["id"], relay_id],
        )


def park_row(relay_id: str, row: dict[str, Any], error: str) -> None:
    """Stop trying: the row leaves the relay's work and a dead letter (with a replay) tells staff."""
    attempts = row["publish_attempts"]
    with transaction.atomic():
        updated = OutboxEvent.objects.filter(pk=row["id"], claimed_by=relay_id, published_at__isnull=True).update(
            parked_at=timezone.now(), last_error=error[:2000], claimed_by="", claimed_until=None
        )
        if not updated:
            return
        park(
            task=RELAY_STEP,
            queue="",
            message_id=str(row["event_id"]),
            delivery_id=f"outbox:{row['id']}:{attempts}",
            order_id=row["order_id"],
            kwargs={"outbox_id": row["id"], "kind": row["kind"], "target_task": row["target_task"]},
            error=f"could not publish {row['kind']}: {error}",
            attempts=attempts,
        )
    log.error("parked outbox row %s (%s for order %s) after %d attempts", row["id"], row["kind"], row["order_id"], attempts)


def relay_once(relay_id: str, limit: int = 100) -> int:
    """Claim, publish and mark one batch; returns how many events were published."""
    rows = claim_batch(relay_id, limit)
    if not rows:
        return 0
    outcome = publish_batch(rows)
    done = outcome.confirmed
    try:
        if done and faults.enabled("relay_crash_after_publish"):
            log.error("fault: relay killed between publish and mark")
            os.kill(os.getpid(), signal.SIGKILL)
    finally:
        if done:
            mark_published(relay_id, done)
    _settle_failures(relay_id, rows, outcome)
    return len(done)


def _settle_failures(relay_id: str, rows: list[dict[str, Any]], outcome: BatchOutcome) -> None:
    """A refused row (nacked, or its own fault) backs off alone; rows whose confirms never came
    go back uncounted if the broker is away, else each backs off as a failure of its own."""
    by_id = {row["id"]: row for row in rows}
    for row_id, error in outcome.refused.items():
        row = by_id[row_id]
        log.warning("publish of %s for order %s failed: %s", row["kind"], row["order_id"], error)
        row_failed(relay_id, row, error)
    if not outcome.lost:
        return
    error = next(iter(outcome.lost.values()))
    log.warning("no confirm for %d of %d row(s): %s", len(outcome.lost), len(rows), error)
    if broker_unreachable():
        release_untried(relay_id, list(outcome.lost), error)
        return
    for row_id, error in outcome.lost.items():
        row_failed(relay_id, by_id[row_id], error)


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
    next_drain = next_beat = 0.0
    started_at, published = timezone.now(), 0
    while not stop.is_set():
        try:
            # Health-checked at each round: a connection broken by a database restart is replaced here.
            connection.close_if_unusable_or_obsolete()
            while (done := relay_once(relay_id, batch)) and not stop.is_set():
                published += done
                if done < batch:
                    break
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + settings.RELAY_HEARTBEAT_SECONDS
                heartbeat.beat(relay_id, started_at, published)
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
    drop_producer(graceful=True)
    with contextlib.suppress(Exception):  # the database may be what stopped it
        heartbeat.stopped(relay_id)
    log.info("relay %s stopped", relay_id)
