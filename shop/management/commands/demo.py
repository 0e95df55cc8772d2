"""``manage.py demo``: the whole shop in one command.

Starts the database if none is configured (the embedded default), migrates,
seeds the catalog and the demo staff account, then runs every process of
``shop/local/processes.py`` under honcho and prints where to look. A process that exits
on its own is reported and restarted, as compose's ``restart: unless-stopped`` does;
Ctrl-C or SIGTERM stops every child (SIGTERM to each process, SIGKILL to the process
groups still there after ``KILL_WAIT``, named on the console), then the database. The
console is for people: no banners, routine polls at DEBUG, and the URLs printed again,
last, once every process reports ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin

import honcho.manager
import httpx
import psutil
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from orders.models import TERMINAL
from shop.local import bootstrap
from shop.local.processes import argv, commands
from shop.local.supervision import RestartingManager
from shop.management.commands.seed import DEMO_STAFF

# A busy worker gets this long to finish its tasks after Ctrl-C; what is still running then is
# killed, and its unacknowledged messages are redelivered. An idle shop needs no kill: its
# processes are gone about 2 s after Ctrl-C (an idle worker's pool processes take billiard's
# second of grace), the whole demo, its database stopped, in about 2.5 s (tests/test_demo_console.py).
KILL_WAIT = 8
honcho.manager.KILL_WAIT = KILL_WAIT


# Celery warns at each worker's start when it runs as root (a task could do anything as root).
CELERY_ROOT_WARNING = "You're running the worker with superuser privileges"
AS_ROOT = (
    "running as root: so do the Celery workers, which Celery advises against (a task runs with every "
    "privilege). Run the demo as a normal user to avoid it."
)


def resolve(command: str) -> str:
    """Run each process with this interpreter's environment; ``exec`` so signals reach it."""
    return "exec " + shlex.join(argv(command))


class DemoManager(RestartingManager):
    """Restart what dies (``shop/local/supervision.py``), and keep a pid file so that a demo killed
    with SIGKILL leaves no orphans behind."""

    def __init__(self, pid_file: Path) -> None:
        super().__init__(on_started=self.write_pids)
        self.pid_file = pid_file

    def write_pids(self, pids: dict[str, int]) -> None:
        """Written beside and renamed over: the tests and the next demo read it while it changes,
        and a file truncated then written is empty in between."""
        staged = self.pid_file.with_suffix(".pids.tmp")
        staged.write_text(json.dumps(pids))
        os.replace(staged, self.pid_file)


def kill_leftovers(pid_file: Path) -> int:
    """Process groups of a previous demo that was killed before it could stop them."""
    if not pid_file.exists():
        return 0
    killed = 0
    for pid in json.loads(pid_file.read_text() or "{}").values():
        with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
            if str(settings.BASE_DIR) in " ".join(psutil.Process(pid).cmdline()) or psutil.Process(pid).cwd() == str(
                settings.BASE_DIR
            ):
                os.killpg(pid, signal.SIGKILL)
                killed += 1
    pid_file.unlink()
    return killed


class Command(BaseCommand):
    help = "Run the whole shop locally: database (embedded if none is configured), web, relay, workers, beat, Flower."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--fresh", action="store_true", help="start from an empty embedded database")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--flower-port", type=int, default=5555)
        parser.add_argument("--no-example", action="store_true", help="do not place an example order at start")
        parser.add_argument(
            "--small",
            action="store_true",
            help="a small machine's arrangement: one web worker, one worker for payments, fraud, stock and the "
            "orders join, one for shipping and emails (instead of a worker per queue)",
        )

    def handle(
        self, *args, fresh: bool, host: str, port: int, flower_port: int, no_example: bool, small: bool = False, **options
    ) -> None:
        state = bootstrap.STATE_DIR
        state.mkdir(parents=True, exist_ok=True)
        pid_file = state / "demo.pids"
        if killed := kill_leftovers(pid_file):
            self.stdout.write(f"stopped {killed} process group(s) left by an earlier demo")
        self.prepare_database(fresh)
        if bootstrap.embedded_broker():
            from shop.local.fs_transport import reset

            reset(bootstrap.broker_dir())
        call_command("migrate", verbosity=0)
        call_command("seed", demo_staff=True)
        call_command("collectstatic", interactive=False, verbosity=0)
        connections.close_all()

        env = dict(os.environ)
        env.setdefault("FLOWER_BASIC_AUTH", ":".join(DEMO_STAFF))
        env.setdefault("SITE_URL", f"http://{host}:{port}")
        env.setdefault("ALLOWED_HOSTS", f"{host},localhost,127.0.0.1")
        env.setdefault("FRAUD_REVIEW_DEADLINE_SECONDS", "120")  # a review's expiry is seen within the demo
        env.setdefault("FRAUD_VELOCITY_EXEMPT_DOMAINS", DEMO_EMAIL_DOMAIN)  # every test card, in a row
        for name, value in DEMO_PACING.items():  # the stages light up one by one; FAULT_* set outside win
            env.setdefault(name, value)
        env.setdefault("SYNC_CHECKOUT_ENABLED", "1")  # POST /api/checkout/sync, to compare with /api/orders
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(bootstrap.fresh_metrics_dir(state / "metrics")))
        if os.geteuid() == 0:
            self.stdout.write(AS_ROOT)
            warnings = [env.get("PYTHONWARNINGS", ""), f"ignore:{CELERY_ROOT_WARNING}"]
            env["PYTHONWARNINGS"] = ",".join(w for w in warnings if w)  # said once above, not once per worker
        manager = DemoManager(pid_file)
        procs = commands(
            host=host,
            port=port,
            flower_port=flower_port,
            beat_schedule=str(state / "celerybeat-schedule"),
            quiet=True,
            arrangement="small" if small else "default",
        )
        for name, command in procs.items():
            manager.add_process(name, resolve(command), env=env, cwd=str(settings.BASE_DIR))
        base = f"http://{host}:{port}"
        nodes = [name.removeprefix("worker-") for name in procs if name.startswith("worker-")]
        threading.Thread(target=self.announce, args=(base, flower_port, host, not no_example, nodes), daemon=True).start()
        try:
            manager.loop()
        finally:
            pid_file.unlink(missing_ok=True)
            if bootstrap.embedded_database():
                from shop.local import embedded_db

                embedded_db.stop(bootstrap.pgdata_dir())
                self.stdout.write("embedded PostgreSQL stopped")
        sys.exit(manager.returncode or 0)

    def prepare_database(self, fresh: bool) -> None:
        if not bootstrap.embedded_database():
            if fresh:
                self.stderr.write("--fresh only applies to the embedded database; DATABASE_URL is left as it is")
            return
        if fresh:
            from shop.local import embedded_db

            connections.close_all()
            embedded_db.wipe(bootstrap.pgdata_dir())
            os.environ["DATABASE_URL"] = embedded_db.start(bootstrap.pgdata_dir())
        from shop.local import embedded_places

        self.stdout.write("\n".join(embedded_places.where(bootstrap.pgdata_dir())))

    def announce(self, base: str, flower_port: int, host: str, example: bool, nodes: list[str]) -> None:
        """Once the web server answers, place an example order and print where to look; print it
        again once every process is ready, so that the URLs are the last lines on the screen."""
        if not wait_for(lambda: answers(f"{base}/api/products"), 60):
            self.stderr.write("the web server did not come up within 60 s")
            return
        order_url, status_url = place_example_order(base) if example else ("", "")
        flower = f"http://{host}:{flower_port}/"
        self.print_urls(base, flower, order_url)
        deadline = time.monotonic() + READY_WITHIN
        while waiting := not_ready(flower, status_url, nodes):
            if time.monotonic() > deadline:
                self.stderr.write(f"not ready after {READY_WITHIN:.0f} s: {', '.join(waiting)}")
                return
            time.sleep(0.5)
        self.print_urls(base, flower, order_url, heading="Everything is up:")

    def print_urls(self, base: str, flower: str, order_url: str, heading: str = "The shop is running:") -> None:
        user, password = DEMO_STAFF
        lines = [
            "",
            heading,
            f"  storefront     {base}/",
            f"  example order  {order_url or '(none)'}",
            f"  API schema     {base}/api/docs",
            f"  admin          {base}/admin/   (user {user}, password {password})",
            f"  operations     {base}/ops/   (the same staff login)",
            f"  Flower         {flower}   (same user and password)",
            "Press Ctrl-C to stop everything.",
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


READY_WITHIN = 120.0
# The demo's test addresses (the example order's, the checkout form's suggestion): the fraud
# velocity rule ignores them in the demo (FRAUD_VELOCITY_EXEMPT_DOMAINS).
DEMO_EMAIL_DOMAIN = "example.com"
# The simulated outside world at a pace a viewer can follow (shop/pipeline/faults.py; each latency
# is the middle of a range of +-50 %): payment 0.6-1.9 s per gateway call, fraud scoring 0.3-1 s,
# a label 0.5-1.5 s, the carrier's scans 4 s and 10 s after the label. The tests and the bench
# keep the fast defaults; any of these set in the environment, or in the admin, wins.
DEMO_PACING = {
    "FAULT_GATEWAY_LATENCY_MS": "1250",
    "FAULT_FRAUD_LATENCY_MS": "650",
    "FAULT_CARRIER_LABEL_MS": "1000",
    "FAULT_CARRIER_TRANSIT_SECONDS": "4",
    "FAULT_CARRIER_DELIVERY_SECONDS": "10",
}


def wait_for(predicate: Callable[[], bool], seconds: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2).raise_for_status()
    except httpx.HTTPError:
        return False
    return True


def not_ready(flower: str, status_url: str, nodes: list[str]) -> list[str]:
    """What has not reported ready yet: every worker node (``<node>@host``) answering a ping, Flower answering,
    and the example order settled (its pipeline's log lines come before the URLs, not after)."""
    from shop.celery import app

    try:
        answering = {name.split("@")[0] for reply in app.control.ping(timeout=1.0) for name in reply}
    except Exception:  # the broker may still be starting: nobody answers yet
        answering = set()
    missing = [f"worker-{node}" for node in nodes if node not in answering]
    if not answers(flower + "healthcheck"):
        missing.append("flower")
    if status_url and order_status(status_url) not in TERMINAL:
        missing.append("example order")
    return missing


def order_status(status_url: str) -> str:
    try:
        return str(httpx.get(status_url, timeout=5).json().get("status", ""))
    except (httpx.HTTPError, ValueError):
        return ""


def place_example_order(base: str) -> tuple[str, str]:
    """The example order's page and its API status URL (empty if none could be placed)."""
    products = httpx.get(f"{base}/api/products", timeout=5).json()
    sku = next((p["sku"] for p in products if p["stock"] > 0), None)
    if sku is None:
        return "", ""
    body = {
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "address": {"line1": "12 Analytical St", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
        "items": [{"sku": sku, "quantity": 1}],
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    }
    response = httpx.post(f"{base}/api/orders", json=body, timeout=10)
    if response.status_code != 201:
        return "", ""
    placed = response.json()
    return placed.get("url", ""), urljoin(base, placed.get("status_url", ""))
