"""``bench tasks``: the in-process driver takes every order to the end and charges each task its own cost.

The figures are this machine's; what must hold is that the driver ran the pipeline as the
workers do (every order delivered, the checker clean, each task of a happy order run as often
as the map says) and that statements are charged to the task that sent them, not to the driver.
"""

from __future__ import annotations

import pytest

from bench.runtime import seed_catalog
from bench.scenarios.tasks import DRIVER, drive, outside_at_once
from orders.models import Order, OrderStatus
from shop.pipeline.events import ORDER_STEP

pytestmark = pytest.mark.timeout(120)

HAPPY_PATH = {
    "orders.services.order_place": 1,
    "orders.payments.tasks.authorize_payment": 1,
    "orders.fraud.tasks.screen_order": 1,
    "inventory.tasks.reserve_stock": 1,
    "notifications.tasks.send_order_email": 2,  # placed, then shipped
    ORDER_STEP: 7,  # authorized, cleared, reserved, captured, created, in transit, delivered
    "orders.payments.tasks.capture_payment": 1,
    "shipping.tasks.create_shipment": 1,
    "inventory.tasks.commit_stock": 1,
}


def test_every_order_is_delivered_and_each_task_is_charged_its_own_runs_and_statements(transactional_db: None) -> None:
    skus = seed_catalog()
    with outside_at_once():
        tally, ids, wall = drive(skus, 4)
    assert set(Order.objects.filter(public_id__in=ids).values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    rows = {r["task"]: r for r in tally.per_task(4)}
    assert {task: rows[task]["runs_per_order"] for task in HAPPY_PATH} == HAPPY_PATH
    for task in HAPPY_PATH:
        assert rows[task]["cpu_ms_per_run"] > 0 and rows[task]["statements_per_run"] >= 1, rows[task]
    # Only the gateway's card is written at checkout from the outside world's tables; the join touches none.
    assert rows["orders.services.order_place"]["outside_statements_per_run"] == 1
    assert rows[ORDER_STEP]["outside_statements_per_run"] == 0
    assert DRIVER not in rows and tally.statements[DRIVER] > 0, "the driver's own reads are nobody's cost"
    assert wall > 0
