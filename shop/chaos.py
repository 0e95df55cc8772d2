"""Faults on real processes, and the chaos runner that combines them.

The runner starts the shop's own processes (``shop/processes.py``: web, relay,
one worker per queue, beat) under a :class:`Supervisor` that restarts whatever
dies, as a real deployment's supervisor would. A load thread places orders
through the HTTP API at a steady rate, retrying a failed request with the same
``Idempotency-Key`` as a real client would. A :class:`Nemesis`, on a seeded
schedule, SIGKILLs worker children, worker main processes and the relay,
restarts RabbitMQ and PostgreSQL (immediate mode: a crash), pauses a worker
past the broker's consumer timeout, publishes every event twice for a while,
and makes a handler crash its process once for an order. Then the faults heal,
the pipeline quiesces and :func:`shop.audit.run` checks every invariant.

The fault functions are public: ``tests/test_faults.py`` injects each one alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
from django.conf import settings
from django.db import connection

from shop.processes import commands
from shop.queues import is_rabbitmq

log = logging.getLogger("shop.chaos")
ROOT = Path(settings.BASE_DIR)
CARDS = (  # (number, weight): mostly good cards, some declines and gateway timeouts
    ("4242424242424242", 88),
    ("4000000000000002", 6),
    ("4000000000009995", 4),
    ("4000000000000119", 2),
)


def database_url() -> str:
    """The URL of the database Django is using, for child processes."""
    db = connection.settings_dict
    host = db.get("HOST") or "localhost"
    host = quote(host, safe="") if host.startswith("/") else host
    auth = quote(db.get("USER") or "postgres", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgresql://{auth}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


def _argv(command: str) -> list[str]:
    program, *rest = shlex.split(command)
    if program == "python":
        return [sys.executable, *rest]
    if program == "celery":
        return [sys.executable, "-m", "celery", *rest]
    local = Path(sys.executable).parent / program
    return [str(local) if local.exists() else program, *rest]


# ---- Supervision ------------------------------------------------------------


@dataclass
class Service:
    name: str
    argv: list[str]
    popen: subprocess.Popen | None = None
    restarts: int = 0
    paused: bool = False


class Supervisor:
    """Start processes, each in its own process group, and restart any that exits.

    Before a restart the rest of the dead process's group is killed too (the
    prefork children of a worker whose main process died), as a container
    runtime would.
    """

    def __init__(self, argvs: dict[str, list[str]], env: dict[str, str], log_dir: Path) -> None:
        self.services = {name: Service(name, argv) for name, argv in argvs.items()}
        self.env = env
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        for service in self.services.values():
            self._spawn(service)
        self._thread.start()

    def _spawn(self, service: Service) -> None:
        with open(self.log_dir / f"{service.name}.log", "ab") as out:
            service.popen = subprocess.Popen(
                service.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _watch(self) -> None:
        while not self._stop.wait(0.3):
            with self._lock:
                for service in self.services.values():
                    if service.popen is not None and service.popen.poll() is not None and not self._stop.is_set():
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(service.popen.pid, signal.SIGKILL)
                        log.warning("%s exited (%s): restarting", service.name, service.popen.returncode)
                        service.restarts += 1
                        self._spawn(service)

    def pid(self, name: str) -> int:
        popen = self.services[name].popen
        assert popen is not None
        return popen.pid

    def children(self, name: str) -> list[int]:
        with contextlib.suppress(psutil.Error):
            return [c.pid for c in psutil.Process(self.pid(name)).children()]
        return []

    def names(self, prefix: str) -> list[str]:
        return [name for name in self.services if name.startswith(prefix)]

    def pause(self, name: str) -> None:
        self.services[name].paused = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid(name), signal.SIGSTOP)

    def resume(self, name: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid(name), signal.SIGCONT)
        self.services[name].paused = False

    def resume_all(self) -> None:
        for name, service in self.services.items():
            if service.paused:
                self.resume(name)

    def restarts(self) -> dict[str, int]:
        return {name: s.restarts for name, s in self.services.items() if s.restarts}

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.resume_all()
        live = [s.popen for s in self.services.values() if s.popen is not None and s.popen.poll() is None]
        for popen in live:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for popen in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(max(0.1, deadline - time.monotonic()))
        for service in self.services.values():
            if service.popen is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(service.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    service.popen.wait(5)


def shop_processes(*, port: int, state_dir: Path, concurrency: int = 2) -> dict[str, list[str]]:
    """The demo's processes (``shop/processes.py``) minus Flower, as argv lists."""
    argvs = {}
    for name, command in commands(port=port, beat_schedule=str(state_dir / "celerybeat-schedule")).items():
        if name == "flower":
            continue
        command = command.replace("--concurrency 2", f"--concurrency {concurrency}")
        command = command.replace("--workers 2 ", "--workers 1 ")
        argvs[name] = _argv(command)
    return argvs


# ---- The faults -------------------------------------------------------------


def kill_worker_child(sup: Supervisor, rng: random.Random) -> str:
    """SIGKILL one prefork child of a worker (the OOM killer's choice): the task it held is redelivered."""
    candidates = [(name, pid) for name in sup.names("worker-") for pid in sup.children(name)]
    if not candidates:
        return "no worker child to kill"
    name, pid = rng.choice(candidates)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return f"{name} child {pid}"


def kill_worker_main(sup: Supervisor, rng: random.Random) -> str:
    """SIGKILL a worker's main process: its connection drops and the broker requeues what it held."""
    name = rng.choice(sup.names("worker-"))
    with contextlib.suppress(ProcessLookupError):
        os.kill(sup.pid(name), signal.SIGKILL)
    return name


def kill_relay(sup: Supervisor, rng: random.Random) -> str:
    """SIGKILL the relay, wherever it is: between publish and mark, its lease expires and it publishes again."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(sup.pid("relay"), signal.SIGKILL)
    return "relay"


def pause_worker(sup: Supervisor, rng: random.Random, seconds: float = 8.0) -> str:
    """SIGSTOP a worker (a long GC pause, a frozen VM) past the broker's consumer timeout, then SIGCONT."""
    name = rng.choice(sup.names("worker-"))
    sup.pause(name)
    try:
        time.sleep(seconds)
    finally:
        sup.resume(name)
    return f"{name} for {seconds:.0f} s"


def _rabbitmqctl(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def broker_restartable() -> bool:
    """RabbitMQ on this host, with rabbitmqctl to restart it."""
    url = settings.CELERY_BROKER_URL
    local = re.search(r"@(127\.0\.0\.1|localhost)[:/]", url) is not None
    return is_rabbitmq(url) and local and shutil.which("rabbitmqctl") is not None


def broker_start() -> None:
    """Start RabbitMQ's application if it is stopped (heal; idempotent)."""
    _rabbitmqctl("start_app")
    _rabbitmqctl("await_startup")


def restart_broker(sup: Supervisor | None = None, rng: random.Random | None = None, down_seconds: float = 2.0) -> str:
    """``rabbitmqctl stop_app`` / ``start_app``: every connection drops; durable quorum queues keep their messages."""
    _rabbitmqctl("stop_app")
    try:
        time.sleep(down_seconds)
    finally:
        broker_start()
    return f"down {down_seconds:.0f} s"


def own_vhost(name: str) -> str:
    """A RabbitMQ virtual host of its own (created if missing): the run's workers never take
    messages meant for another shop on the same broker. Returns the broker URL for it."""
    url = settings.CELERY_BROKER_URL
    user = re.search(r"://([^:@/]+)", url)
    if name not in _rabbitmqctl("list_vhosts", "-q").split():
        _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, user.group(1) if user else "guest", ".*", ".*", ".*")
    base = url.split("//", 1)[1].split("/", 1)[0]
    return f"{url.split('//', 1)[0]}//{base}/{quote(name, safe='')}"


@contextlib.contextmanager
def short_consumer_timeout(ms: int = 5000) -> Iterator[None]:
    """RabbitMQ's consumer timeout, shortened for channels opened meanwhile, then put back.

    The broker checks the timeout on each channel's tick, once a minute by default;
    the tick is shortened too so that a 5 s timeout fires after about 5 s.
    """

    def get(key: str) -> str | None:
        match = re.search(r"\{ok,\s*(\d+)\}", _rabbitmqctl("eval", f"application:get_env(rabbit, {key})."))
        return match.group(1) if match else None

    defaults = {"consumer_timeout": "1800000", "channel_tick_interval": "60000"}  # never unset: channels read them
    saved = {key: get(key) or default for key, default in defaults.items()}
    _rabbitmqctl("eval", f"application:set_env(rabbit, consumer_timeout, {int(ms)}).")
    _rabbitmqctl("eval", f"application:set_env(rabbit, channel_tick_interval, {min(1000, int(ms))}).")
    try:
        yield
    finally:
        for key, value in saved.items():
            with contextlib.suppress(Exception):
                _rabbitmqctl("eval", f"application:set_env(rabbit, {key}, {value}).")


def restart_database(sup: Supervisor | None = None, rng: random.Random | None = None) -> str:
    """Restart PostgreSQL in immediate mode: every connection is cut and the server runs crash recovery."""
    with connection.cursor() as cur:
        cur.execute("SELECT current_setting('data_directory'), current_setting('server_version_num')")
        data_dir, version = cur.fetchone()
    connection.close()
    # A cluster of this host's PostgreSQL packages first: root can read its postmaster.pid too.
    if shutil.which("pg_ctlcluster") and shutil.which("pg_lsclusters"):
        for line in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.splitlines():
            cols = line.split()
            if len(cols) >= 6 and cols[5] == data_dir:
                subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", cols[0], cols[1], "restart", "-m", "immediate"],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                return f"cluster {cols[0]}/{cols[1]}, immediate"
    from shop import embedded_db

    if embedded_db.is_running(Path(data_dir)):
        embedded_db.restart(Path(data_dir), mode="immediate")
        return "embedded server, immediate"
    raise RuntimeError(f"do not know how to restart the PostgreSQL server of {data_dir} (version {version})")


def database_start() -> None:
    """Heal: start this host's PostgreSQL cluster if it is down (a restart that failed halfway)."""
    if shutil.which("pg_lsclusters"):
        for line in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.splitlines():
            cols = line.split()
            if len(cols) >= 4 and cols[3] == "down":
                subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cols[0], cols[1], "start"], capture_output=True)


def _with_db_retry(fn: Callable[[], Any], seconds: float = 60) -> Any:
    """Run an ORM call, reconnecting while the database is restarting."""
    from django.db import Error as DatabaseError

    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except DatabaseError:
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def duplicate_publishing(sup: Supervisor | None = None, rng: random.Random | None = None, seconds: float = 5.0) -> str:
    """Publish every event twice for a while: every consumer sees each message two times."""
    from shop import faults

    _with_db_retry(lambda: faults.set_switch("duplicate_publish", "1"))
    try:
        time.sleep(seconds)
    finally:
        _with_db_retry(lambda: faults.set_switch("duplicate_publish", "0"))
    return f"for {seconds:.0f} s"


# ---- The chaos run ----------------------------------------------------------


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


@dataclass
class Summary:
    seed: int
    orders_requested: int
    rate: float
    broker: str
    started: float = field(default_factory=time.time)
    placed: list[str] = field(default_factory=list)
    rejected: int = 0
    unconfirmed: int = 0
    client_retries: int = 0
    faults: Counter = field(default_factory=Counter)
    fault_log: list[str] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    audit_stats: dict[str, int] = field(default_factory=dict)
    quiesce_seconds: float = 0.0
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        terminal = self.statuses.get("delivered", 0) + self.statuses.get("cancelled", 0)
        return {
            "ok": self.ok,
            "seed": self.seed,
            "broker": self.broker,
            "orders": {
                "requested": self.orders_requested,
                "confirmed": len(self.placed),
                "rejected_at_checkout": self.rejected,
                "unconfirmed": self.unconfirmed,
                "client_retries": self.client_retries,
                "terminal": terminal,
                "by_status": dict(self.statuses),
            },
            "rate_per_second": self.rate,
            "faults": dict(self.faults),
            "fault_log": self.fault_log,
            "restarts": self.restarts,
            "audit": self.audit_stats,
            "violations": self.violations,
            "quiesce_seconds": round(self.quiesce_seconds, 1),
            "duration_seconds": round(self.duration_seconds, 1),
        }

    def text(self) -> str:
        d = self.as_dict()
        o = d["orders"]
        lines = [
            f"chaos run (seed {self.seed}, broker {self.broker}): {'OK' if self.ok else 'FAILED'}",
            f"  orders: {o['requested']} requested, {o['confirmed']} confirmed, "
            f"{o['rejected_at_checkout']} rejected at checkout, {o['unconfirmed']} unconfirmed, "
            f"{o['terminal']} terminal {o['by_status']}",
            f"  faults: {sum(self.faults.values())} injected {dict(self.faults)}",
            f"  restarts by the supervisor: {self.restarts}",
            f"  quiesced in {d['quiesce_seconds']} s; whole run {d['duration_seconds']} s",
            f"  violations: {len(self.violations)}",
            *(f"    {v}" for v in self.violations),
        ]
        return "\n".join(lines)


def seed_catalog(products: int = 20, stock: int = 400, scarce: int = 3) -> list[str]:
    """Products for the run; a few scarce ones so that some orders race for the last units."""
    from inventory.models import StockItem
    from inventory.services import stock_receive
    from shop.models import Product

    skus = []
    for i in range(products):
        sku = f"CHAOS-{i + 1:03d}"
        Product.objects.get_or_create(sku=sku, defaults={"name": f"Chaos product {i + 1}", "price": Decimal(5 + i * 3)})
        if not StockItem.objects.filter(sku=sku).exists():
            stock_receive(sku=sku, quantity=5 if i < scarce else stock)
        skus.append(sku)
    return skus


def _order_body(rng: random.Random, skus: list[str], n: int, run_id: str) -> dict[str, Any]:
    numbers, weights = zip(*CARDS, strict=True)
    lines = rng.sample(skus, rng.choice((1, 1, 1, 2)))
    return {
        "email": f"chaos-{run_id}-{n}@example.com",  # one email per order: the velocity rule stays quiet
        "name": f"Chaos customer {n}",
        "address": {"line1": f"{n} Chaos Lane", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
        "items": [{"sku": sku, "quantity": rng.choice((1, 1, 2))} for sku in lines],
        "card": {"number": rng.choices(numbers, weights)[0], "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    }


class Load:
    """Places orders through the HTTP API at a steady rate, like a patient client."""

    def __init__(self, base_url: str, summary: Summary, skus: list[str], rng: random.Random, patience: float = 90.0) -> None:
        self.base_url = base_url
        self.summary = summary
        self.skus = skus
        self.rng = rng
        self.patience = patience
        self.run_id = uuid.uuid4().hex[:8]
        self.lock = threading.Lock()

    def place_one(self, client: httpx.Client, n: int, body: dict[str, Any]) -> None:
        key = f"chaos-{self.run_id}-{n}"
        deadline = time.monotonic() + self.patience
        while True:
            try:
                response = client.post("/api/orders", json=body, headers={"Idempotency-Key": key})
                if response.status_code == 201:
                    with self.lock:
                        self.summary.placed.append(response.json()["id"])
                    return
                if 400 <= response.status_code < 500:
                    with self.lock:
                        self.summary.rejected += 1
                    return
            except httpx.HTTPError:
                pass
            with self.lock:
                self.summary.client_retries += 1
            if time.monotonic() > deadline:
                with self.lock:
                    self.summary.unconfirmed += 1
                return
            time.sleep(0.5)

    def run(self, count: int, rate: float) -> None:
        bodies = [_order_body(self.rng, self.skus, n, self.run_id) for n in range(count)]
        threads: list[threading.Thread] = []
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            start = time.monotonic()
            for n, body in enumerate(bodies):
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                thread = threading.Thread(target=self.place_one, args=(client, n, body), daemon=True)
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join(self.patience + 30)


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
        from shop import faults

        recent = self.summary.placed[-5:]
        if not recent:
            return "no order yet"
        order_id = self.rng.choice(recent)
        _with_db_retry(lambda: faults.set_switch("crash_order", order_id))
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
    from shop import faults
    from shop.models import FaultSetting

    if broker_restartable():
        with contextlib.suppress(Exception):
            broker_start()
    with contextlib.suppress(Exception):
        database_start()
    _with_db_retry(lambda: FaultSetting.objects.filter(name__in=["duplicate_publish", "crash_order", "poison_order"]).delete())
    faults.clear_cache()


def quiesce(placed: list[str], timeout: float) -> bool:
    """Wait until every confirmed order is terminal and the outbox has drained."""
    from orders.models import TERMINAL, Order
    from shop.models import OutboxEvent

    def done() -> bool:
        open_orders = Order.objects.filter(public_id__in=placed).exclude(status__in=TERMINAL).count()
        return open_orders == 0 and not OutboxEvent.objects.filter(published_at__isnull=True).exists()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _with_db_retry(done):
            return True
        time.sleep(1)
    return False


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
    from shop import audit

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
        _wait_http(f"http://127.0.0.1:{port}/api/products", 60)
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
    summary.statuses = Counter(dict(_with_db_retry(lambda: list(_status_counts(summary.placed)))))
    report = _with_db_retry(lambda: audit.run(expected_orders=summary.placed, deadline_seconds=quiesce_timeout))
    summary.audit_stats = report.stats
    summary.violations = [str(v) for v in report.violations]
    open_orders = _with_db_retry(
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


def _wait_http(url: str, timeout: float) -> None:
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
