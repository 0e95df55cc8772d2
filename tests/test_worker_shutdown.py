"""A worker asked to stop while its queue is full exits within its supervisor's grace.

At a warm shutdown Celery drops the jobs it had written to a pool child but not yet seen it
accept (the broker redelivers them) and then reads no more results; a child that had run one
of them waited for its result to be read, billiard's 30 s, and the worker with it: the demo's
supervisor (8 s of grace) and compose (10 s) SIGKILLed it. Seen in the demo console test on the
shipping worker, which beat feeds a carrier poll every second. The race is timing-dependent: on
two cores, without ``shop.celery.POOL_CHILD_EXIT_WAIT_SECONDS``, 2 to 3 of every 8 stops of a
flooded worker hung for 30 s, so the test stops one several times.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import harness

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

ATTEMPTS = 4
FLOOD = 2000  # carrier polls waiting in the queue: cheap tasks, always one being handed to a child
GRACE = 8.0  # the demo supervisor's (shop/management/commands/demo.py KILL_WAIT)


def test_a_worker_stopped_with_a_full_queue_exits_within_its_supervisors_grace(tmp_path: Path, without_shared_pipeline) -> None:
    from shop.celery import app

    took = []
    try:
        for attempt in range(ATTEMPTS):
            for _ in range(FLOOD):
                app.send_task("shipping.tasks.poll_carrier", queue="shipping")
            worker = harness.worker(tmp_path, name=f"flooded{attempt}", queues="shipping", concurrency=2, beat=False)
            harness.wait_until(lambda w=worker: "poll_carrier" in w.log(), 60, 0.1, "the worker to take its first task")
            time.sleep(1.0)
            started = time.monotonic()
            worker.popen.send_signal(signal.SIGTERM)  # to the main process alone, as a supervisor does
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.popen.wait(GRACE + 30)
            worker.stop()
            took.append(round(time.monotonic() - started, 1))
            app.control.purge()
    finally:
        app.control.purge()
    assert max(took) < GRACE, f"seconds each stop took: {took}"
