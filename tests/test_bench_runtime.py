"""The bench's own shop leaves Django pointed at the database it found, whatever was configured."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

# Imported at collection, before pytest-django points Django at the test database: the moment a
# name read at import would be the configured database (found in CI: the tests after a bench
# test ran on it, and the session dropped it at its end).
from bench import runtime


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
