"""The bench's ceilings: every one measured on the real servers, and nothing left behind.

Quick mode (about 2 s a ceiling) against a bench shop of its own without processes: a
fresh database and vhost (or broker folder), dropped afterwards. The ceilings start their
own web server and worker; after ``measure()`` none of them runs any more, and the table,
the queues and the exchanges made for it are gone.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import psutil
import psycopg
import pytest

from tests.conftest import on_rabbitmq

pytestmark = pytest.mark.pipeline

EXPECTED = {
    "view_insert_p50_at_20": "ms",
    "view_insert_p99_at_20": "ms",
    "view_insert_p50_at_50": "ms",
    "view_insert_p99_at_50": "ms",
    "view_insert_closed_loop": "req/s",
    "view_insert_closed_loop_p99": "ms",
    "confirmed_publish": "msg/s",
    "confirmed_publish_batched": "msg/s",
    "celery_noop": "tasks/s",
    "pg_insert_commit_1": "tx/s",
    "pg_insert_commit_2": "tx/s",
}


@pytest.fixture
def shop(django_db_blocker: Any) -> Iterator[Any]:
    from bench.runtime import BenchShop

    with django_db_blocker.unblock():
        bench = BenchShop(name="bench_ceiling_test", processes=False).start()
        try:
            yield bench
        finally:
            bench.stop()


def _ceiling_processes() -> list[str]:
    """Processes still running the ceilings' web app or worker, anywhere on the machine."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if "bench.ceiling_app:application" in line or "bench_ceiling_noop@" in line:
            found.append(f"{proc.pid} {line}")
    return found


def _children() -> set[int]:
    """This process's descendants, but the embedded PostgreSQL's backends: the measurement's
    own connections come and go there, and they are the server's, not something left behind."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() not in ("postgres", "postmaster"):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def _rabbit_names(vhost: str, kind: str) -> set[str]:
    done = subprocess.run(
        ["rabbitmqctl", f"list_{kind}", "-p", vhost, "-q", "--no-table-headers", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(done.stdout.split())


def test_every_ceiling_is_measured_and_nothing_is_left_behind(shop: Any) -> None:
    from bench import ceilings

    rabbit = on_rabbitmq()
    before = {kind: _rabbit_names(shop.name, kind) for kind in ("queues", "exchanges")} if rabbit else {}
    children_before = _children()

    found = ceilings.measure(
        database_url=shop.env["DATABASE_URL"],
        broker_url=shop.broker_url,
        log_dir=shop.log_dir,
        quick=True,
        env=shop.env,
    )

    for name, unit in EXPECTED.items():
        assert name in found, name
        assert found[name]["unit"] == unit, (name, found[name])
        assert found[name]["value"] and found[name]["value"] > 0, (name, found[name])
        assert len(found[name]["how"]) > 40, (name, found[name])
    assert found["view_insert_closed_loop"]["errors"] == {}, found["view_insert_closed_loop"]
    assert found["celery_noop"]["consumed"] > 0

    assert _ceiling_processes() == []
    assert _children() <= children_before
    with psycopg.connect(shop.env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT to_regclass('bench_ceiling_row')").fetchone() == (None,)
    if rabbit:
        assert {kind: _rabbit_names(shop.name, kind) for kind in ("queues", "exchanges")} == before
