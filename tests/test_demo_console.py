"""``manage.py demo`` beside a test run, and its console: quiet, its URLs last, a fast Ctrl-C."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from shop import bootstrap

DEMO_STATE = bootstrap.PROJECT_ROOT / ".demo"  # where `manage.py demo` keeps its state by default


def inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def test_the_test_run_shares_no_broker_folder_or_database_with_a_demo():
    """A demo running in the same checkout once took the browser tests' messages from the same
    broker folder (and found no such order in its own database): the run's state is its own."""
    assert os.path.realpath(bootstrap.STATE_DIR) != os.path.realpath(DEMO_STATE)
    if bootstrap.embedded_broker():
        assert not inside(bootstrap.broker_dir(), DEMO_STATE / "broker")
        folders = {k: v for k, v in settings.CELERY_BROKER_TRANSPORT_OPTIONS.items() if "folder" in k}
        assert folders and not any(inside(Path(v), DEMO_STATE / "broker") for v in folders.values()), folders
    if bootstrap.embedded_database():
        assert not inside(bootstrap.pgdata_dir(), DEMO_STATE / "pgdata")
