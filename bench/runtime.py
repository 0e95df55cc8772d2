"""A shop of the bench's own: a fresh database and broker vhost, the demo's process list, torn down after.

Each scenario gets a new one, so no scenario inherits another's backlog, and nothing is
left behind: the processes are stopped, the vhost and the database dropped (``--keep`` keeps
the database and the logs for a post-mortem). With ``--url`` the bench drives a shop that is
already running instead, and reads the database and broker this process is configured with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from bench.sampler import Sampler
from bench.workload import first_order
from shop.local import bootstrap
from shop.local.processes import argv, commands
from shop.pipeline.queues import is_rabbitmq
from shop.proof.chaos.outages import delete_vhost, own_vhost
from shop.proof.chaos.runner import free_port, use_fresh_database, wait_http
from shop.proof.chaos.supervisor import Supervisor, database_url

log = logging.getLogger("bench")

PRODUCTS = 20
STOCK = 10_000_000  # never the limit: a benchmark of the pipeline, not of running out
BENCH_LOGIN = ("bench", "bench-only-password")


@dataclass
class Outside:
    """The simulated outside world's latencies (fault switches, ``shop/pipeline/faults.py``)."""

    gateway_ms: float = 0.0
    carrier_transit_s: float = 0.0
    carrier_delivery_s: float = 0.0
    gateway_failure_rate: float = 0.0

    def env(self) -> dict[str, str]:
        return {
            "FAULT_GATEWAY_LATENCY_MS": f"{self.gateway_ms:g}",
            "FAULT_CARRIER_TRANSIT_SECONDS": f"{self.carrier_transit_s:g}",
            "FAULT_CARRIER_DELIVERY_SECONDS": f"{self.carrier_delivery_s:g}",
            "FAULT_GATEWAY_FAILURE_RATE": f"{self.gateway_failure_rate:g}",
            "FAULT_FRAUD_REVIEW_RATE": "0",
        }


@dataclass
class BenchShop:
    """The shop under test. ``start()`` brings it up and waits until an order completes end to end."""

    name: str
    outside: Outside = field(default_factory=Outside)
    url: str | None = None  # a running shop: nothing is started or dropped
    keep: bool = False
    processes: bool = True  # False: only the database and vhost (the ceilings bring their own processes)
    extra_env: dict[str, str] = field(default_factory=dict)
    arrangement: str = "default"  # shop/local/processes.py: "default" or "small"
    commands: dict[str, str] = field(default_factory=dict)  # process name -> command, once started
    sup: Supervisor | None = None
    broker_url: str = ""
    log_dir: Path | None = None
    skus: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    previous_database: str = ""
    first_order_id: str = ""  # the order start() waited for: every process then was serving

    def __post_init__(self) -> None:
        self.external = self.url is not None

    def start(self) -> BenchShop:
        if self.external:
            self.broker_url = settings.CELERY_BROKER_URL
            self.skus = seed_catalog()
            return self
        self.previous_database = settings.DATABASES["default"]["NAME"]  # pointed back at it by stop()
        use_fresh_database(self.name)
        self.skus = seed_catalog()
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        port, flower_port = free_port(), free_port()
        self.env = self._child_env(port)
        if not self.processes:
            return self
        self.url = f"http://127.0.0.1:{port}"
        self.commands = commands(
            port=port,
            flower_port=flower_port,
            beat_schedule=str(self.log_dir / "celerybeat-schedule"),
            quiet=True,
            arrangement=self.arrangement,
        )
        argvs = {name: argv(cmd) for name, cmd in self.commands.items()}
        self.sup = Supervisor(argvs, self.env, self.log_dir)
        self.sup.start()
        try:
            wait_http(f"{self.url}/api/products", 90)
            self.first_order_id = first_order(self.url, self.skus)
        except BaseException:
            self.stop()
            raise
        return self

    def _child_env(self, port: int) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "PYTHONUNBUFFERED": "1",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SITE_URL": f"http://127.0.0.1:{port}",
            "FAULTS_ENABLED": "1",
            "SYNC_CHECKOUT_ENABLED": "1",
            "FLOWER_BASIC_AUTH": ":".join(BENCH_LOGIN),
            "PROMETHEUS_MULTIPROC_DIR": str(self.log_dir / "metrics"),  # type: ignore[operator]
            **self.outside.env(),
        }
        if is_rabbitmq(settings.CELERY_BROKER_URL):
            self.broker_url = own_vhost(self.name)
        else:
            broker = self.log_dir / "broker"  # type: ignore[operator]
            env["SHOP_BROKER_DIR"] = str(broker)
            self.broker_url = settings.CELERY_BROKER_URL
        env["CELERY_BROKER_URL"] = self.broker_url
        env.update(self.extra_env)
        return env

    @property
    def broker_dir(self) -> Path | None:
        """The filesystem broker's folder of this shop (None on RabbitMQ)."""
        if is_rabbitmq(self.broker_url):
            return None
        return Path(self.env["SHOP_BROKER_DIR"]) if "SHOP_BROKER_DIR" in self.env else bootstrap.broker_dir()

    def sampler(self, **kwargs: Any) -> Sampler:
        """A sampler of this shop's processes, queues and orders (``bench/sampler.py``)."""
        options = None
        if self.broker_dir is not None:
            from shop.local.fs_transport.folders import transport_options

            options = transport_options(self.broker_dir)
        return Sampler(pids=self.roles, broker_url=self.broker_url, transport_options=options, **kwargs)

    def roles(self) -> dict[str, list[int]]:
        """Process role -> main pids, for CPU and memory sampling (children are found from these)."""
        if self.sup is None:
            return {}
        found: dict[str, list[int]] = {}
        for name, service in self.sup.services.items():
            if service.popen is not None and service.popen.poll() is None:
                found.setdefault(name, []).append(service.popen.pid)
        return found

    def stop(self) -> None:
        """Stop every process, then drop what the run created (unless ``keep``)."""
        if self.external:
            return
        if self.sup is not None:
            self.sup.stop()
            self.sup = None
        connection.close()
        if is_rabbitmq(self.broker_url) and self.broker_url != settings.CELERY_BROKER_URL:
            with contextlib.suppress(Exception):
                delete_vhost(self.name)
        if self.keep:
            point_django_at(self.previous_database)
        else:
            drop_database(self.name, back_to=self.previous_database)
            if self.log_dir is not None:
                shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> BenchShop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def seed_catalog() -> list[str]:
    """Products with stock that never runs out (the bench measures the pipeline, not a sell-out)."""
    from inventory.models import StockItem
    from inventory.services import stock_receive
    from shop.storefront.models import Product

    skus = []
    for i in range(PRODUCTS):
        sku = f"BENCH-{i + 1:03d}"
        Product.objects.get_or_create(sku=sku, defaults={"name": f"Bench product {i + 1}", "price": Decimal(5 + i)})
        if not StockItem.objects.filter(sku=sku).exists():
            stock_receive(sku=sku, quantity=STOCK)
        skus.append(sku)
    return skus


def drop_database(name: str, *, back_to: str) -> None:
    """Drop the run's database and point Django back at ``back_to``, the database it used when
    the run began. Never a name read at import: under pytest that is the configured database,
    not the test database, and the tests after would use it and the session would drop it."""
    import psycopg
    from psycopg import sql

    connection.close()
    db = connection.settings_dict
    params = {"host": db.get("HOST") or None, "port": db.get("PORT") or None, "user": db.get("USER") or None}
    with psycopg.connect(dbname="postgres", password=db.get("PASSWORD") or None, autocommit=True, **params) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    point_django_at(back_to)


def point_django_at(name: str) -> None:
    """Django's default database from now on, in this process (its open connection closed first)."""
    connection.close()
    connection.settings_dict["NAME"] = name
    settings.DATABASES["default"]["NAME"] = name
