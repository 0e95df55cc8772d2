"""The bench's own shop leaves Django pointed at the database it found, whatever was configured."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

# Imported at collection, before pytest-django points Django at the test database: the moment a
# name read at import would be the configured database (found in CI: the tests after a bench
# test ran on it, and the session dropped it at its end).
from bench import runtime
from orders.models import Order
from shop.pipeline.models import OutboxEvent


def test_a_bench_shop_points_django_back_at_the_database_it_started_from(transactional_db: None) -> None:
    before = connection.settings_dict["NAME"]
    assert before == settings.DATABASES["default"]["TEST"]["NAME"]  # the test database
    shop = runtime.BenchShop(name="bench_runtime_test", processes=False).start()
    try:
        assert connection.settings_dict["NAME"] == "bench_runtime_test"
    finally:
        shop.stop()
    assert connection.settings_dict["NAME"] == settings.DATABASES["default"]["NAME"] == before
    with connection.cursor() as cur:
        cur.execute("SELECT current_database()")
        assert cur.fetchone()[0] == before


@pytest.mark.bench
@pytest.mark.timeout(300)
def test_a_bench_shop_has_run_an_order_through_every_stage_when_it_starts(transactional_db: None) -> None:
    """A scenario's first seconds measure a running shop: start() returns once an order was
    delivered, so every worker had consumed and the first payments wait for no worker to connect."""
    shop = runtime.BenchShop(name="bench_runtime_first_order").start()
    try:
        order = Order.objects.get(public_id=shop.first_order_id)
        assert order.status == "delivered"
        kinds = set(OutboxEvent.objects.filter(order_id=order.public_id).values_list("kind", flat=True))
        assert {"payment.authorized", "fraud.cleared", "stock.reserved", "order.delivered"} <= kinds
    finally:
        shop.stop()
