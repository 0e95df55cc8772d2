"""``tasks``: what each task itself costs, in CPU and PostgreSQL statements, with nothing else running.

Every other scenario measures the whole demo on the machine's cores, where a worker's samples
mix its own work with waiting for PostgreSQL, RabbitMQ and the other workers to give a core
back. This one takes contention out: in the bench's own process it places orders with
``order_place``, hands each outbox row's messages to their tasks (``Task.apply``, the task's
own code with Celery's tracer, no broker), polls the carrier when nothing is left, and counts
per task the CPU seconds (``time.process_time``) and the statements Django sends. The
simulated outside world answers at once, and info log lines are not written (a worker's
logging is a few per cent of its samples, measured with py-spy). So the figures are what a change to a task's code
or queries saves, measured without the noise of a loaded machine.

The floor beside the statements is the cheapest ORM round trip (a primary-key lookup),
measured in the same run: what the order's statements would cost if each were that one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from bench.scenarios.base import Figure, Result, Run, audit

ZERO_LATENCY = {
    "gateway_latency_ms": "0",
    "fraud_latency_ms": "0",
    "carrier_label_ms": "0",
    "carrier_transit_seconds": "0",
    "carrier_delivery_seconds": "0",
    "fraud_review_rate": "0",
}
POLL = "shipping.services.shipments_sync"
DRIVER = ""


@functools.cache
def outside_tables() -> tuple[str, ...]:
    """The simulated outside world's own tables: work a real gateway, carrier or mail server does."""
    from notifications.models import MailboxMessage
    from orders.payments.models import GatewayCard, GatewayTransaction
    from shipping.models import CarrierParcel

    return tuple(m._meta.db_table for m in (GatewayCard, GatewayTransaction, CarrierParcel, MailboxMessage))


class Tally:
    """CPU seconds, statements and calls per task; the statements the outside world's tables take."""

    def __init__(self) -> None:
        self.cpu: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()
        self.outside: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.current = DRIVER

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        self.statements[self.current] += 1
        if any(table in sql for table in outside_tables()):
            self.outside[self.current] += 1
        return execute(sql, params, many, context)

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        self.current, self.calls[name] = name, self.calls[name] + 1
        started = time.process_time()
        try:
            yield
        finally:
            self.cpu[name] += time.process_time() - started
            self.current = DRIVER  # the driver's own statements (reading the outbox) are nobody's cost

    def per_task(self, orders: int) -> list[dict[str, Any]]:
        rows = [
            {
                "task": name,
                "runs_per_order": round(self.calls[name] / orders, 2),
                "cpu_ms_per_run": round(1000 * self.cpu[name] / self.calls[name], 2),
                "cpu_ms_per_order": round(1000 * self.cpu[name] / orders, 2),
                "statements_per_run": round(self.statements[name] / self.calls[name], 2),
                "outside_statements_per_run": round(self.outside[name] / self.calls[name], 2),
            }
            for name in self.calls
            if name != DRIVER
        ]
        return sorted(rows, key=lambda r: -r["cpu_ms_per_order"])


def place(skus: list[str], count: int) -> list[str]:
    """``count`` orders of one to three lines, as checkout writes them (the card tokenised first)."""
    from orders.payments import gateway
    from orders.services import Address, CardOnFile, LineRequest, order_place
    from shop.storefront.models import Product

    products = {p.sku: p for p in Product.objects.filter(sku__in=skus)}
    ids = []
    for i in range(count):
        token = gateway.tokenize("4242424242424242")
        picked = [skus[(i + k) % len(skus)] for k in range(1 + i % 3)]
        lines = [LineRequest(sku=s, name=products[s].name, unit_price=products[s].price, quantity=1) for s in picked]
        order = order_place(
            email=f"bench{i}@example.com",
            name="Bench Customer",
            address=Address(line1="1 Bench Street", city="London", postal_code="N1 1AA", country="GB"),
            lines=lines,
            card=CardOnFile(token=token.token, brand=token.brand, last4=token.last4, country=token.country),
            currency="GBP",
        )
        ids.append(order.public_id)
    return ids


def deliver(tally: Tally) -> int:
    """Run every subscriber of every unpublished outbox row, as a worker would; how many ran."""
    from celery import current_app as app  # the project's app, without importing the project

    from shop.pipeline.models import OutboxEvent
    from shop.pipeline.task_messages import messages_for

    ran = 0
    rows = list(OutboxEvent.objects.filter(published_at__isnull=True).order_by("id").values()[:500])
    for row in rows:
        for task, _queue, message_id, kwargs in messages_for(row):
            with tally.measure(task):
                app.tasks[task].apply(kwargs=kwargs, task_id=message_id, headers={"request_id": row["request_id"] or None})
            ran += 1
    OutboxEvent.objects.filter(pk__in=[r["id"] for r in rows]).update(published_at=timezone.now())
    return ran


def drive(skus: list[str], count: int) -> tuple[Tally, list[str], float]:
    """Place the orders and run the pipeline to the end: the tally, the order ids, wall seconds."""
    from shipping.services import shipments_sync
    from shop.pipeline.task_messages import import_tasks

    import_tasks()
    tally = Tally()
    started = time.monotonic()
    with connection.execute_wrapper(tally), quiet_logs():
        with tally.measure("orders.services.order_place"):
            ids = place(skus, count)
        idle = 0
        while idle < 3:  # three empty rounds in a row: nothing left to run or to poll
            if deliver(tally):
                idle = 0
                continue
            with tally.measure(POLL):
                moved = shipments_sync()
            idle = 0 if moved else idle + 1
    tally.calls["orders.services.order_place"] = count  # measured as one run that placed them all
    return tally, ids, time.monotonic() - started


def round_trip_floor(samples: int = 2000) -> float:
    """CPU seconds of the cheapest ORM round trip here: a primary-key lookup of one order."""
    from orders.models import Order

    pk = Order.objects.values_list("pk", flat=True).first()
    started = time.process_time()
    for _ in range(samples):
        Order.objects.filter(pk=pk).first()
    return (time.process_time() - started) / samples


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """No info lines from the tasks on the bench's console (thousands per run); warnings still show."""
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@contextlib.contextmanager
def outside_at_once() -> Iterator[None]:
    """The simulated gateway, fraud scoring and carrier with no latency, for this process only."""
    from shop.pipeline import faults

    with override_settings(FAULTS_ENABLED=True):
        for name, value in ZERO_LATENCY.items():
            faults.set_switch(name, value)
        try:
            yield
        finally:
            faults.clear_cache()


def run(ctx: Run) -> Result:
    result = Result("tasks")
    count = ctx.count(300, 20)
    with ctx.shop("tasks", processes=False) as shop, outside_at_once():
        tally, ids, wall = drive(shop.skus, count)
        floor = round_trip_floor(ctx.count(2000, 200))
        result.audit = audit(ids, drained=True)
    rows = tally.per_task(count)
    cpu = sum(r["cpu_ms_per_order"] for r in rows)
    statements = sum(n for task, n in tally.statements.items() if task != DRIVER) / count
    outside = sum(n for task, n in tally.outside.items() if task != DRIVER) / count
    how = f"{count} orders through every task in one process (Task.apply, no broker, no contention)"
    result.add(
        Figure(
            "tasks: CPU per order",
            round(cpu, 1),
            "ms",
            how,
            ceiling_value=round(statements * floor * 1000, 1),
            ceiling_label="the order's statements at the cheapest ORM round trip (ms)",
        ),
        Figure("tasks: statements per order", round(statements, 1), "statements", how + "; Django's own count"),
        Figure(
            "tasks: outside world's statements per order",
            round(outside, 1),
            "statements",
            "on the simulated gateway's, carrier's and mailbox's tables: not the shop's own work",
        ),
        Figure("tasks: wall time per order", round(1000 * wall / count, 1), "ms", how + "; PostgreSQL's time included"),
    )
    result.data = {"per_task": rows, "round_trip_floor_ms": round(floor * 1000, 3), "orders": count}
    for r in rows:
        print(
            f"  {r['task']:<48} {r['runs_per_order']:>5} runs/order {r['cpu_ms_per_run']:>7} ms CPU/run "
            f"{r['statements_per_run']:>6} statements/run ({r['outside_statements_per_run']} outside)"
        )
    return result
