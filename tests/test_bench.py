"""``manage.py bench --quick``: every scenario runs, writes its JSON and charts, and leaves nothing behind.

A test of the tool, not of the speed: the figures are whatever this machine gives; what
must hold is that each scenario produced them, the checker was clean after each, and no
process, database or RabbitMQ vhost of the bench outlives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest
from django.conf import settings

from bench.scenarios import SCENARIOS
from shop.pipeline.queues import is_rabbitmq
from tests.harness import ROOT

pytestmark = [pytest.mark.bench, pytest.mark.timeout(1500)]

CHARTS = ("burst.png", "outage.png", "kill.png", "sync-vs-async.png", "soak.png", "relay.png")


def bench_databases() -> set[str]:
    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        dbname="postgres",
    ) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")}


def bench_vhosts() -> set[str]:
    if not is_rabbitmq(settings.CELERY_BROKER_URL):
        return set()
    out = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True).stdout
    return {v for v in out.split() if v.startswith("bench_")}


# The test run shortens the retry policy so that tests which exhaust it run in seconds
# (tests/conftest.py). The bench measures the shop as it ships: with 3 retries of about a second
# each, a 5 s gateway outage parks captures as dead letters, which the outage scenario reports.
TEST_ONLY = ("PIPELINE_MAX_RETRIES", "PIPELINE_RETRY_BACKOFF_MAX")


def shop_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY}
    return {**env, "PYTHONUNBUFFERED": "1"}


def shop_processes_since(started: float) -> list[str]:
    found = []
    for proc in psutil.process_iter(["create_time", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["create_time"] >= started and any(k in cmd for k in ("shop.wsgi", "-A shop", "manage.py relay")):
            found.append(f"{proc.pid}: {cmd}")
    return found


def test_every_scenario_runs_quick_writes_json_and_charts_and_leaves_nothing_behind(tmp_path: Path):
    databases, vhosts, started = bench_databases(), bench_vhosts(), time.time()
    env = shop_env()
    done = subprocess.run(
        [sys.executable, "manage.py", "bench", "all", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    output = done.stdout + done.stderr
    path = tmp_path / "all-quick.json"
    assert path.exists(), output[-6000:]
    document = json.loads(path.read_text())
    unclean = {name for name, s in document["scenarios"].items() if not s["audit"].get("clean", True)}
    # The command exits 1 when the checker found a violation after any scenario, and only then.
    assert done.returncode == (1 if unclean else 0), output[-6000:]
    assert set(document["scenarios"]) == set(SCENARIOS)
    for name, scenario in document["scenarios"].items():
        if name not in ("ceiling", "relay"):  # these two place no order: nothing for the checker
            assert scenario["audit"]["clean"], (name, scenario["audit"]["violations"])
    assert document["machine"]["cores"] and document["machine"]["postgresql"] and document["machine"]["git_commit"]
    figures = {(f["scenario"], f["name"]): f for f in document["figures"]}
    assert figures[("checkout", "20/s: p99")]["value"] > 0
    assert figures[("checkout", "20/s: p99")]["ceiling_value"] > 0, "a figure beside its ceiling"
    assert figures[("saturate", "completed orders/s, overall")]["value"] > 0
    cpu = document["scenarios"]["saturate"]["data"]["cpu_ms_per_order"]
    assert cpu["machine"] > cpu["worker-orders"] > 0 and cpu["web"] > 0, cpu
    assert figures[("saturate", "machine's busy CPU per completed order")]["ceiling_value"] > 0
    tasks = figures[("tasks", "tasks: CPU per order")]
    assert tasks["value"] > 0 and tasks["ceiling_value"] > 0, "CPU per order beside the round-trip floor"
    # Every hop's relay share is read back: there, and a part of the whole journey.
    assert 0 < figures[("end-to-end", "relay leg: p50")]["value"] < figures[("end-to-end", "end to end: p50")]["value"]
    # The relay drained every row it wrote, with 1 relay and with 2, beside the publish ceilings.
    assert [s["relays"] for s in document["scenarios"]["relay"]["data"]["steps"]] == [1, 2]
    relay = figures[("relay", "relay drain, 1 relay(s)")]
    assert relay["value"] > 0
    assert relay["ceiling_value"] == document["scenarios"]["ceiling"]["data"]["ceilings"]["confirmed_publish"]["value"]
    for chart in CHARTS:
        assert (tmp_path / chart).stat().st_size > 10_000, chart
    assert "| checkout | 20/s: p99 |" in output, "the table is printed"
    time.sleep(1)
    assert not shop_processes_since(started), shop_processes_since(started)
    assert bench_databases() == databases
    assert bench_vhosts() == vhosts


def test_the_small_arrangement_runs_the_whole_pipeline_and_its_kill(tmp_path: Path):
    """Three workers instead of six: orders still complete end to end, and the kill scenario
    finds the worker that consumes payments under its small-machine name."""
    databases, vhosts = bench_databases(), bench_vhosts()
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "bench",
            "kill",
            "--quick",
            "--no-ceiling",
            "--arrangement",
            "small",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=shop_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    document = json.loads((tmp_path / "kill-quick.json").read_text())
    assert document["options"]["arrangement"] == "small"
    figures = {f["name"]: f["value"] for f in document["figures"]}
    assert figures["orders delivered"] == figures["orders confirmed"] > 0, figures
    assert document["scenarios"]["kill"]["audit"]["clean"]
    assert bench_databases() == databases
    assert bench_vhosts() == vhosts
