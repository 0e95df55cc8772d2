"""The test run's settings: the shop's own, with a generated SECRET_KEY and the fault switches on.

pytest-django imports this before any conftest runs; the variables set here are
inherited by every process a test starts (workers, relay, ``manage.py``).
"""

import os
import secrets
import tempfile
from pathlib import Path

# A test run shares nothing with a `manage.py demo` of the same checkout: a demo's workers
# would consume this run's messages from `.demo/broker` (and find no such order in the demo's
# database), and stopping the demo stops the embedded server in `.demo/pgdata`. This module
# is imported before shop.settings and before any conftest, so the choice is made here.
os.environ.setdefault("SHOP_STATE_DIR", str(Path(__file__).resolve().parent.parent / ".demo" / "tests"))
if not os.environ.get("CELERY_BROKER_URL"):
    os.environ.setdefault("SHOP_BROKER_DIR", tempfile.mkdtemp(prefix="shop-broker-"))
# The latency histograms of every process of the run, summed by /metrics (shop/pipeline/latency_metrics.py).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="shop-metrics-"))
os.environ.setdefault("SECRET_KEY", "test-run-" + secrets.token_urlsafe(32))
os.environ.setdefault("FAULTS_ENABLED", "1")  # the fault tests drive shop/pipeline/faults.py switches

from shop.settings import *  # noqa: F403
