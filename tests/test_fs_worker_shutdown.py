"""A prefork worker on the embedded broker stops on SIGTERM as fast as one on RabbitMQ: idle within
about 2 s, busy once its task is done and acknowledged (a warm shutdown gives up nothing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from celery import Celery

from shop.local import fs_transport
from shop.local.fs_transport import transport_options
from tests.test_fs_transport import CELERY_APP

pytestmark = pytest.mark.embedded

# About 2 s measured for an idle worker with two pool processes (billiard's own second of grace
# per process, in parallel, is most of it); it took 6-7 s when the transport could not run in
# the worker's event loop. The margin is for a loaded machine, and stays below the old time.
IDLE_STOP_WITHIN = 4.5
NAP = 3.0  # how long the task that is running at SIGTERM still has to go

NAP_TASK = """
import time


@app.task(name="fsapp.nap")
def nap(seconds, name):
    (BASE / (name + ".started")).write_text("")
    time.sleep(seconds)
    (BASE / name).write_text("done")
"""


def start_worker(tmp_path: Path, concurrency: int = 2) -> subprocess.Popen:
    """The transport test's Celery app (no project settings) with a task that takes a while."""
    (tmp_path / "fsapp.py").write_text(CELERY_APP.format(module=fs_transport.__file__, base=str(tmp_path)) + NAP_TASK)
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE" and not key.startswith("CELERY_")}
    env["PYTHONPATH"] = str(tmp_path)
    command = [sys.executable, "-m", "celery", "-A", "fsapp", "worker", "-c", str(concurrency), "-n", "fsworker@%h", "-l", "INFO"]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text():
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return worker


def stop(worker: subprocess.Popen) -> tuple[int, float]:
    """SIGTERM, as the demo's supervisor and a container runtime send it: the exit code and how long it took."""
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    return code, time.monotonic() - started


def test_an_idle_prefork_worker_stops_within_seconds_of_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    worker = start_worker(tmp_path)
    children = psutil.Process(worker.pid).children()
    assert len(children) == 2
    code, took = stop(worker)
    log = (tmp_path / "worker.log").read_text()
    assert code == 0, log
    assert took < IDLE_STOP_WITHIN, f"an idle worker took {took:.1f} s to stop\n{log}"
    _, alive = psutil.wait_procs(children, timeout=1)
    assert not alive


def test_a_busy_worker_finishes_and_acknowledges_its_task_before_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    worker = start_worker(tmp_path)
    app = Celery("probe", broker="fsatomic://", set_as_current=False)
    app.conf.broker_transport_options = transport_options(tmp_path / "broker")
    app.send_task("fsapp.nap", args=[NAP, "napped"], queue="fsapp")
    deadline = time.monotonic() + 30
    while not (tmp_path / "napped.started").exists():
        assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
        time.sleep(0.05)
    code, took = stop(worker)
    assert code == 0
    assert (tmp_path / "napped").read_text() == "done"
    assert took > NAP - 1, "stopped before its task was done"
    # Acknowledged (acks_late): neither held nor back in its queue for a redelivery.
    assert not list((tmp_path / "broker").glob("*/**/*.fsapp.msg"))
