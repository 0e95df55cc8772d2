"""``manage.py demo`` beside a test run, and its console: quiet, its URLs last, a fast Ctrl-C."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from shop.local import bootstrap
from shop.management.commands.demo import KILL_WAIT
from tests.harness import wait_until
from tests.test_demo import Demo, embedded_env, state, stopped  # noqa: F401 - state is a fixture

DEMO_STATE = bootstrap.PROJECT_ROOT / ".demo"  # where `manage.py demo` keeps its state by default
QUIET_FOR = 5.0  # how long an idle demo is watched for lines after its URLs
# What the console once showed that nobody needs: Celery's banners, Flower inspecting workers
# before they are up, every carrier poll.
# Measured on two cores: every process gone about 2 s after Ctrl-C (an idle worker's pool processes
# take billiard's second of grace), the demo, its database stopped, 0.3-2 s later. It was 6-7 s and
# 7-10 s while the embedded broker kept workers out of their event loop and each process spent a
# second of CPU collecting its heap at exit. The margins are for a loaded machine.
PROCESSES_STOP_WITHIN = 4.0
DEMO_STOPS_WITHIN = 5.5
NOISE = ("[config]", "[queues]", "-------------- ", "Inspect method", "poll_carrier", "carrier-tracking")


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


@pytest.mark.demo
@pytest.mark.embedded
@pytest.mark.timeout(420)
def test_the_demo_console_is_quiet_ends_with_its_urls_and_stops_in_seconds(state):  # noqa: F811
    demo = Demo(state, embedded_env()).start("--fresh")
    try:
        wait_until(lambda: "Everything is up:" in demo.log(), 180, interval=0.5, what="every process to report ready")
        started = demo.log()
        # An idle shop says nothing more: the URLs stay the last lines on the screen.
        time.sleep(QUIET_FOR)
        after = demo.log()[len(started) :]
        assert not after.strip(), f"printed after the URLs: {after[-3000:]}"
        for noise in NOISE:
            assert noise not in started, f"{noise!r} in the console:\n{started[-8000:]}"
        assert started.count("superuser privileges") <= 1
        children = demo.descendants()
    except BaseException:
        demo.kill()
        raise
    stop_started = time.monotonic()
    demo.proc.send_signal(signal.SIGINT)
    _, alive = psutil.wait_procs(children, timeout=30)
    children_gone = time.monotonic() - stop_started
    demo.proc.wait(30)
    demo_gone = time.monotonic() - stop_started
    log = demo.log().split("SIGINT received")[-1]
    assert not [p for p in alive if not stopped(p)], "left behind"
    assert "SIGKILL" not in log and "had to kill" not in log, log
    assert "every process exited on its own" in log, log
    print(f"processes stopped {children_gone:.1f} s after Ctrl-C, the demo {demo_gone:.1f} s (kills after {KILL_WAIT} s)")
    assert children_gone < PROCESSES_STOP_WITHIN, log
    assert demo_gone < DEMO_STOPS_WITHIN, log
