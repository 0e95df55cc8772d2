"""The test run's settings: the shop's own, with a generated SECRET_KEY and the fault switches on.

pytest-django imports this before any conftest runs; the variables set here are
inherited by every process a test starts (workers, relay, ``manage.py``).
"""

import os
import secrets

os.environ.setdefault("SECRET_KEY", "test-run-" + secrets.token_urlsafe(32))
os.environ.setdefault("FAULTS_ENABLED", "1")  # the fault tests drive shop/pipeline/faults.py switches

from shop.settings import *  # noqa: F403
