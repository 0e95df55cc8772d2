"""Demo scenarios, one click each on the operations page: a Black Friday burst, a payment
outage, a killed worker. They exist to be watched: the queues fill and drain on the map while
checkout stays fast, a stage turns red and recovers. Offered only where the fault switches are
on (``FAULTS_ENABLED``: the demo and the tests), never in production.

Each runs in a process of its own (``manage.py demo_scenario``), started by the page and
detached from the web server, so a 60 s outage holds no web thread; its ``ScenarioRun`` row
says when it started, when it ended and what it did. The burst goes through the HTTP API like
any customer, the outage through the gateway's fault switch, the kill through Celery's own
view of its pool (``inspect().stats()``) and a SIGKILL to one pool process, which the worker
replaces while its message is redelivered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import httpx
from django.conf import settings
from django.db import connection
from django.utils import timezone

from inventory.models import StockItem
from shop.ops.models import ScenarioRun
from shop.pipeline import faults

SCENARIOS: dict[str, str] = {
    "black_friday": "Black Friday: 300 orders in 30 s through the HTTP API",
    "payment_outage": "Payment outage: every gateway call fails for 60 s",
    "kill_worker": "Killed worker: SIGKILL to a pool process of the payments worker",
}


class ScenarioRefused(ValueError):
    """Scenarios are off here, or no such scenario."""


def available() -> bool:
    return faults.active()


def start(name: str, *, staff: str) -> ScenarioRun:
    """Record the run and start it in a detached process of its own."""
    if not available():
        raise ScenarioRefused("demo scenarios run only where FAULTS_ENABLED is on (the demo, the tests)")
    if name not in SCENARIOS:
        raise ScenarioRefused(f"no scenario {name!r}: choose one of {', '.join(SCENARIOS)}")
    run = ScenarioRun.objects.create(name=name, staff=staff)
    env = {**os.environ, "DATABASE_URL": _database_url()}
    subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "demo_scenario", str(run.pk)],
        cwd=settings.BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return run


def run(run_id: int, **options: float) -> ScenarioRun:
    """Run a recorded scenario to its end (in the scenario's own process), recording what it did."""
    record = ScenarioRun.objects.get(pk=run_id)
    runner: Callable[..., str] = {"black_friday": black_friday, "payment_outage": payment_outage, "kill_worker": kill_worker}[
        record.name
    ]
    try:
        record.detail = runner(**options)
    except Exception as exc:  # what went wrong is what the page shows
        record.detail = f"failed: {exc!r}"
    record.ended_at = timezone.now()
    record.save(update_fields=["detail", "ended_at"])
    return record


def recent(limit: int = 5) -> list[dict[str, object]]:
    return [
        {
            "name": r.name,
            "title": SCENARIOS.get(r.name, r.name),
            "staff": r.staff,
            "started_at": r.started_at.isoformat(),
            "ended_at": r.ended_at.isoformat() if r.ended_at else None,
            "detail": r.detail,
        }
        for r in ScenarioRun.objects.all()[:limit]
    ]


def black_friday(*, orders: float = 300, seconds: float = 30, base_url: str = "") -> str:
    """``orders`` checkouts spread evenly over ``seconds``, as customers would send them."""
    base = (base_url or settings.SITE_URL).rstrip("/")
    skus = list(StockItem.objects.filter(available__gte=20).order_by("sku").values_list("sku", flat=True)[:20])
    if not skus:
        return "no product has stock left to sell"
    tag, answers = uuid.uuid4().hex[:6], {}
    began = time.monotonic()
    with httpx.Client(base_url=base, timeout=10) as client:
        for n in range(int(orders)):
            time.sleep(max(0.0, began + n * seconds / orders - time.monotonic()))
            status = _checkout(client, skus[n % len(skus)], f"black-friday-{tag}-{n}@example.com", f"{tag}-{n}")
            answers[status] = answers.get(status, 0) + 1
    took = time.monotonic() - began
    return f"{int(orders)} checkouts in {took:.0f} s: " + ", ".join(f"{n} x {s}" for s, n in sorted(answers.items()))


def _checkout(client: httpx.Client, sku: str, email: str, key: str) -> str:
    body = {
        "email": email,
        "name": "Black Friday shopper",
        "address": {"line1": "1 High Street", "city": "Leeds", "postal_code": "LS1 4AP", "country": "GB"},
        "items": [{"sku": sku, "quantity": 1}],
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    }
    try:
        return str(client.post("/api/orders", json=body, headers={"Idempotency-Key": f"bf-{key}"}).status_code)
    except httpx.HTTPError as exc:
        return type(exc).__name__


def payment_outage(*, seconds: float = 60) -> str:
    """Every gateway call answers 503 for ``seconds``: authorisations and captures retry, none is lost."""
    faults.set_switch("gateway_failure_rate", "1")
    try:
        time.sleep(seconds)
    finally:
        faults.set_switch("gateway_failure_rate", "0")
    return f"every gateway call failed for {seconds:.0f} s, then the gateway came back"


def app_stats(timeout: float = 2.0) -> dict[str, dict]:
    """Every worker's own statistics (its pool's process ids among them), by node name."""
    from celery import current_app as app  # the project's app, without importing the project

    return app.control.inspect(timeout=timeout).stats() or {}


def kill_worker(*, queue: str = "payments") -> str:
    """SIGKILL one pool process of a worker consuming ``queue`` (on this machine)."""
    stats = app_stats()
    for node in sorted(stats):
        if node.split("@")[0] in (queue, "critical", "all"):
            processes = stats[node].get("pool", {}).get("processes") or []
            if processes:
                os.kill(int(processes[0]), signal.SIGKILL)
                return f"SIGKILL to pool process {processes[0]} of {node}; the worker starts another"
    return f"no worker consuming {queue} answered"


def _database_url() -> str:
    """The database this process uses (the test database under the tests), for the child."""
    s = connection.settings_dict
    host = s.get("HOST") or ""
    auth = s.get("USER") or ""
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    if host.startswith("/"):
        return f"postgres://{auth}@/{s['NAME']}?host={host}" + (f"&port={s['PORT']}" if s.get("PORT") else "")
    return f"postgres://{auth}@{host}:{s.get('PORT') or 5432}/{s['NAME']}"
