"""Shared fixtures: a small catalog, an order factory, and the running pipeline."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests import harness

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_NO_FUNDS = "4000000000009995"
CARD_TIMEOUT = "4000000000000119"


def order_body(
    *,
    sku: str = "SKU-1",
    quantity: int = 1,
    card: str = CARD_OK,
    email: str = "ada@example.com",
    country: str = "GB",
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "email": email,
        "name": "Ada Lovelace",
        "address": {"line1": "12 Analytical St", "city": "London", "postal_code": "N1 9GU", "country": country},
        "items": [{"sku": sku, "quantity": quantity}],
        "card": {"number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    }
    body.update(extra)
    return body


@pytest.fixture
def catalog(transactional_db: None) -> dict[str, int]:
    """Three products with stock, committed so that worker processes see them."""
    from inventory.services import stock_receive
    from shop.storefront.models import Product

    stock = {"SKU-1": 100, "SKU-2": 5, "SKU-3": 1}
    for i, (sku, qty) in enumerate(stock.items()):
        Product.objects.create(sku=sku, name=f"Product {i + 1}", price=Decimal("10.00") * (i + 1), currency="GBP")
        stock_receive(sku=sku, quantity=qty)
    return stock


@dataclass
class Client:
    """Places orders through the real HTTP API (Django's test client, in process)."""

    client: Any

    def place(self, body: dict[str, Any] | None = None, key: str | None = None, **kw: Any) -> dict[str, Any]:
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        response = self.client.post(
            "/api/orders", json.dumps(body or order_body(**kw)), content_type="application/json", **headers
        )
        assert response.status_code == 201, response.content
        return response.json()


@pytest.fixture
def shop_api(client: Any) -> Client:
    return Client(client)


class Pipeline:
    """The running relay and workers, and ways to wait for orders to finish."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, harness.Proc] = {}
        self.stopped = True

    def start(self) -> None:
        self.procs["worker"] = harness.worker(self.log_dir)
        self.procs["relay"] = harness.relay(self.log_dir)
        self.stopped = False

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.stopped = True

    def logs(self) -> str:
        return "\n".join(f"===== {p.name}\n{p.log()[-6000:]}" for p in self.procs.values())

    def wait_terminal(self, order_ids: list[str], timeout: float = 60) -> dict[str, str]:
        from orders.models import TERMINAL, Order

        def done() -> dict[str, str] | None:
            statuses = dict(Order.objects.filter(public_id__in=order_ids).values_list("public_id", "status"))
            return statuses if len(statuses) == len(order_ids) and all(s in TERMINAL for s in statuses.values()) else None

        try:
            return harness.wait_until(done, timeout, interval=0.2, what=f"{len(order_ids)} orders to finish")
        except AssertionError:
            print(self.logs())
            print(describe_open(order_ids))
            raise

    def wait_quiet(self, timeout: float = 30) -> None:
        """Outbox drained and nothing left on the queues: safe to truncate the tables."""
        from shop.pipeline.models import OutboxEvent

        def quiet() -> bool:
            pending = OutboxEvent.objects.filter(published_at__isnull=True, parked_at__isnull=True)
            return not pending.exists() and queue_depth() == 0

        harness.wait_until(quiet, timeout, interval=0.2, what="the pipeline to go quiet")
        time.sleep(0.5)


def describe_open(order_ids: list[str]) -> str:
    """The orders that did not finish, with their timelines: what a failed wait prints."""
    from orders.models import TERMINAL, Order
    from shop.pipeline.models import OutboxEvent

    lines = []
    for order in Order.objects.filter(public_id__in=order_ids).exclude(status__in=TERMINAL):
        kinds = list(OutboxEvent.objects.filter(order_id=order.public_id).order_by("id").values_list("kind", "published_at"))
        lines.append(f"{order.public_id} {order.status}: " + ", ".join(f"{k}{'' if p else ' (unpublished)'}" for k, p in kinds))
    return "\n".join(lines)


def queue_depth() -> int:
    from shop.celery import app
    from shop.pipeline.events import QUEUES

    total = 0
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for name in QUEUES:
            try:
                total += channel.queue_declare(queue=name, passive=True).message_count
            except Exception:
                conn.close()
                channel = conn.default_channel
    return total


@pytest.fixture(scope="session")
def pipeline_procs(django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with django_db_blocker.unblock():
        from shop.celery import app

        app.control.purge()
    pipeline = Pipeline(tmp_path_factory.mktemp("pipeline-logs"))
    pipeline.start()
    _shared.append(pipeline)
    yield pipeline
    _shared.remove(pipeline)
    pipeline.stop()


# The session's shared pipeline, if one was started: fault tests stop it to run processes of their own.
_shared: list[Pipeline] = []


@pytest.fixture
def without_shared_pipeline() -> None:
    """Only this test's processes consume the queues (the shared ones start again when next needed)."""
    for pipeline in _shared:
        if not pipeline.stopped:
            pipeline.stop()


@pytest.fixture
def pipeline(pipeline_procs: Pipeline, catalog: dict[str, int]) -> Iterator[Pipeline]:
    if pipeline_procs.stopped:
        pipeline_procs.start()
    for proc in pipeline_procs.procs.values():
        assert proc.alive(), proc.log()[-3000:]
    yield pipeline_procs
    pipeline_procs.wait_quiet()


@pytest.fixture
def order_streams() -> Iterator[None]:
    """Stops this process's order-stream listener after the test: its LISTEN connection would
    otherwise keep the test database open when the session drops it."""
    yield
    from shop.storefront.order_events import hub

    hub.stop()


@pytest.fixture
def fault(transactional_db: None) -> Iterator[Any]:
    """Set a runtime fault switch for every process; cleared after the test."""
    from shop.pipeline import faults
    from shop.pipeline.models import FaultSetting

    def set_switch(name: str, value: str) -> None:
        faults.set_switch(name, value)
        time.sleep(faults.CACHE_SECONDS + 0.2)  # every process has seen it once this returns

    yield set_switch
    FaultSetting.objects.all().delete()
    faults.clear_cache()


def new_key() -> str:
    return uuid.uuid4().hex


def counts() -> dict[str, int]:
    """Row counts that bad input must never change."""
    tables = ["orders_order", "orders_orderline", "shop_outboxevent", "shop_idempotencykey"]
    with connection.cursor() as cur:
        out = {}
        for table in tables:
            cur.execute(f"SELECT count(*) FROM {table}")
            out[table] = cur.fetchone()[0]
        cur.execute("SELECT coalesce(sum(available), 0) FROM inventory_stockitem")
        out["stock"] = cur.fetchone()[0]
    return out
