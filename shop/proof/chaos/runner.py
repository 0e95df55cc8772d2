"""The chaos run: load, a seeded nemesis, heal, quiesce, audit, summary."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.db import connection

from shop.pipeline.queues import is_rabbitmq
from shop.proof.chaos.load import Load, seed_catalog
from shop.proof.chaos.outages import (
    broker_restartable,
    broker_start,
    database_start,
    duplicate_publishing,
    kill_relay,
    kill_worker_child,
    kill_worker_main,
    pause_worker,
    restart_broker,
    restart_database,
    short_consumer_timeout,
    with_db_retry,
)
from shop.proof.chaos.summary import Summary
from shop.proof.chaos.supervisor import Supervisor, database_url, shop_processes

log = logging.getLogger("shop.chaos")

FAULT_KINDS = (
    "kill_worker_child",
    "kill_worker_main",
    "kill_relay",
    "restart_broker",
    "restart_database",
    "pause_worker",
    "duplicate_publish",
    "crash_handler",
)


class Nemesis:
    """Injects one fault at a time on a seeded schedule; the first round is every kind once, in random order."""

    def __init__(self, sup: Supervisor, summary: Summary, rng: random.Random, kinds: list[str], interval: float) -> None:
        self.sup = sup
        self.summary = summary
        self.rng = rng
        self.kinds = kinds
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="nemesis", daemon=True)

    def schedule(self) -> list[str]:
        first = list(self.kinds)
        self.rng.shuffle(first)
        return first + [self.rng.choice(self.kinds) for _ in range(1000)]

    def inject(self, kind: str) -> str:
        if kind == "crash_handler":
            return self._crash_handler()
        action = {
            "kill_worker_child": kill_worker_child,
            "kill_worker_main": kill_worker_main,
            "kill_relay": kill_relay,
            "restart_broker": restart_broker,
            "restart_database": restart_database,
            "pause_worker": pause_worker,
            "duplicate_publish": duplicate_publishing,
        }[kind]
        return action(self.sup, self.rng)

    def _crash_handler(self) -> str:
        from shop.pipeline import faults

        recent = self.summary.placed[-5:]
        if not recent:
            return "no order yet"
        order_id = self.rng.choice(recent)
        with_db_retry(lambda: faults.set_switch("crash_order", order_id))
        return f"handlers of {order_id} crash once"

    def run(self) -> None:
        for kind in self.schedule():
            if self.stop.wait(self.interval * self.rng.uniform(0.6, 1.4)):
                return
            try:
                detail = self.inject(kind)
            except Exception as exc:  # not injected: not counted, and the run fails if a kind never was
                self.summary.fault_log.append(f"{time.time() - self.summary.started:7.1f}s {kind}: FAILED {exc!r}")
                log.exception("fault %s could not be injected", kind)
                continue
            self.summary.faults[kind] += 1
            self.summary.fault_log.append(f"{time.time() - self.summary.started:7.1f}s {kind}: {detail}")
            log.warning("fault %s: %s", kind, detail)


def heal() -> None:
    """Undo every fault that may still be on: broker and database up, switches off."""
    from shop.pipeline import faults
    from shop.pipeline.models import FaultSetting

    if broker_restartable():
        with contextlib.suppress(Exception):
            broker_start()
    with contextlib.suppress(Exception):
        database_start()
    with_db_retry(lambda: FaultSetting.objects.filter(name__in=["duplicate_publish", "crash_order", "poison_order"]).delete())
    faults.clear_cache()


def quiesce(placed: list[str], timeout: float) -> bool:
    """Wait until every confirmed order is terminal, the outbox has drained and the pipeline settled."""
    from orders.models import TERMINAL, Order
    from shop.pipeline.models import OutboxEvent

    def done() -> bool:
        open_orders = Order.objects.filter(public_id__in=placed).exclude(status__in=TERMINAL).count()
        return open_orders == 0 and not OutboxEvent.objects.filter(published_at__isnull=True, parked_at__isnull=True).exists()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if with_db_retry(done) and with_db_retry(settled):
            return True
        time.sleep(1)
    return False


def settled() -> bool:
    """The checker's quiet rules can run (no event newer than its grace period) and every
    published event has been taken by each of its subscribers: emails, stock commits and
    other steps that follow an order's terminal status have caught up, so the final audit
    compares finished records, with every process still running until then."""
    from shop.proof import audit

    report = audit.run()
    return bool(report.stats["quiet"]) and not any(v.check == "event-not-processed" for v in report.violations)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(
    *,
    orders: int = 500,
    rate: float = 8.0,
    seed: int = 1,
    interval: float = 4.0,
    kinds: list[str] | None = None,
    log_dir: Path,
    quiesce_timeout: float = 300.0,
    extra_env: dict[str, str] | None = None,
) -> Summary:
    """Run the shop under load and faults, heal, quiesce, audit. Uses the database Django is configured with."""
    from orders.models import Order
    from shop.proof import audit

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the faults
    rng = random.Random(seed)
    broker = "rabbitmq" if is_rabbitmq(settings.CELERY_BROKER_URL) else "filesystem"
    summary = Summary(seed=seed, orders_requested=orders, rate=rate, broker=broker)
    kinds = list(kinds or FAULT_KINDS)
    if not broker_restartable():
        kinds = [k for k in kinds if k != "restart_broker"]
    skus = seed_catalog()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PYTHONUNBUFFERED": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Enough retries with backoff to outlast a database or broker restart.
        "PIPELINE_MAX_RETRIES": "10",
        "PIPELINE_RETRY_BACKOFF_MAX": "4",
        "OUTBOX_CLAIM_SECONDS": "5",
        "FAULT_GATEWAY_LATENCY_MS": "20",
        "FAULT_GATEWAY_FAILURE_RATE": "0.02",
        "FAULT_CARRIER_TRANSIT_SECONDS": "0.5",
        "FAULT_CARRIER_DELIVERY_SECONDS": "1",
        "CARRIER_POLL_SECONDS": "0.5",
        "FAULT_FRAUD_REVIEW_RATE": "0",
        **(extra_env or {}),
    }
    timeout_ctx = contextlib.ExitStack()
    if "pause_worker" in kinds and broker_restartable():
        timeout_ctx.enter_context(short_consumer_timeout(5000))  # a worker paused for 8 s outlives it
    sup = Supervisor(shop_processes(port=port, state_dir=log_dir), env, log_dir)
    nemesis = Nemesis(sup, summary, rng, kinds, interval)
    try:
        sup.start()
        wait_http(f"http://127.0.0.1:{port}/api/products", 60)
        nemesis.thread.start()
        Load(f"http://127.0.0.1:{port}", summary, skus, random.Random(seed + 1)).run(orders, rate)
        # Every kind at least once, even when the load finished first.
        give_up = time.monotonic() + 30 * interval
        while nemesis.thread.is_alive() and set(kinds) - set(summary.faults) and time.monotonic() < give_up:
            time.sleep(0.5)
        nemesis.stop.set()
        nemesis.thread.join(60)
        heal()
        sup.resume_all()
        quiet_from = time.monotonic()
        quiesce(summary.placed, quiesce_timeout)
        summary.quiesce_seconds = time.monotonic() - quiet_from
        summary.restarts = sup.restarts()
    finally:
        nemesis.stop.set()
        heal()
        sup.stop()
        timeout_ctx.close()
    connection.close()
    summary.statuses = Counter(dict(with_db_retry(lambda: list(_status_counts(summary.placed)))))
    report = with_db_retry(lambda: audit.run(expected_orders=summary.placed, deadline_seconds=quiesce_timeout))
    summary.audit_stats = report.stats
    summary.violations = [str(v) for v in report.violations]
    open_orders = with_db_retry(
        lambda: list(
            Order.objects.filter(public_id__in=summary.placed)
            .exclude(status__in=["delivered", "cancelled"])
            .values_list("public_id", "status")
        )
    )
    summary.violations += [f"not-terminal: order {oid}: still {status} after the run" for oid, status in open_orders]
    if summary.unconfirmed:
        summary.violations.append(f"unconfirmed: {summary.unconfirmed} checkouts got no answer within the client's patience")
    missing = set(kinds) - set(summary.faults)
    summary.violations += [f"fault-not-injected: {kind}" for kind in sorted(missing)]
    summary.duration_seconds = time.time() - summary.started
    return summary


def _status_counts(placed: list[str]) -> Any:
    from django.db.models import Count

    from orders.models import Order

    return Order.objects.filter(public_id__in=placed).values_list("status").annotate(n=Count("id")).order_by()


def wait_http(url: str, timeout: float) -> None:
    """Until ``url`` answers 200 (a web server that has come up), or RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def use_fresh_database(name: str) -> None:
    """Point Django at a new, migrated database of this name on the same server (dropped first if it exists)."""
    import psycopg
    from django.core.management import call_command
    from psycopg import sql

    connection.close()
    db = connection.settings_dict
    params = {"host": db.get("HOST") or None, "port": db.get("PORT") or None, "user": db.get("USER") or None}
    with psycopg.connect(dbname="postgres", password=db.get("PASSWORD") or None, autocommit=True, **params) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db["NAME"] = name
    settings.DATABASES["default"]["NAME"] = name
    call_command("migrate", verbosity=0)


def write_json(summary: Summary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.as_dict(), indent=2, default=str) + "\n")
