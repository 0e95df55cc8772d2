"""In a spike the web server gets the cores first, then the stages that decide an order.

Worker processes run nicer than the web server and the relay; a worker of low-priority
queues only (emails, labels, carrier polls) nicer still; a worker that serves any critical
queue runs at the critical level. Checked on real workers: the main process and the pool
children it forks (which inherit the niceness), and the PostgreSQL backends of their connections.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import weakref
from typing import Any

import psutil
import pytest
from django.conf import settings

from shop.pipeline.priority import queues_option, worker_niceness
from tests import harness


@pytest.mark.parametrize(
    ("queues", "level"),
    [
        (["notifications"], "low"),
        (["shipping", "notifications"], "low"),
        (["payments"], "critical"),
        (["notifications", "orders"], "critical"),
        (None, "critical"),  # a worker of every queue
    ],
)
def test_the_most_urgent_queue_a_worker_serves_decides_its_niceness(queues: list[str] | None, level: str) -> None:
    expected = settings.WORKER_NICENESS_LOW if level == "low" else settings.WORKER_NICENESS_CRITICAL
    assert worker_niceness(queues) == expected


def test_the_queues_option_is_read_in_every_shape_celery_gives_it() -> None:
    assert queues_option("shipping, notifications") == ["shipping", "notifications"]
    assert queues_option(["payments"]) == ["payments"]
    assert queues_option(None) == []


def _niceness_of_worker(proc: harness.Proc, concurrency: int) -> set[int]:
    """The niceness of the worker's main process and of its pool, once the pool is up."""

    def pool_started() -> list[psutil.Process] | None:
        main = psutil.Process(proc.pid)
        children = main.children(recursive=True)
        return [main, *children] if len(children) >= concurrency else None

    found: Any = harness.wait_until(pool_started, 60, 0.2, "the worker's pool to start")
    return {p.nice() for p in found}


@pytest.mark.pipeline
def test_workers_run_below_the_web_server_and_low_priority_ones_below_the_critical(tmp_path: Any) -> None:
    low = harness.worker(tmp_path, name="nice-low", queues="notifications", concurrency=1, beat=False)
    critical = harness.worker(tmp_path, name="nice-critical", queues="payments", concurrency=1, beat=False)
    try:
        assert _niceness_of_worker(low, 1) == {settings.WORKER_NICENESS_LOW}, low.log()[-2000:]
        assert _niceness_of_worker(critical, 1) == {settings.WORKER_NICENESS_CRITICAL}, critical.log()[-2000:]
        assert psutil.Process().nice() < settings.WORKER_NICENESS_CRITICAL < settings.WORKER_NICENESS_LOW
        if autogroup_enabled():  # each worker leads a session of its own: its autogroup is niced too
            assert autogroup_nice(low.pid) == settings.WORKER_NICENESS_LOW
            assert autogroup_nice(critical.pid) == settings.WORKER_NICENESS_CRITICAL
    finally:
        low.stop()
        critical.stop()


def autogroup_enabled() -> bool:
    """The kernel's autogroup is on and applies to this process: it only groups tasks of the root
    cgroup, and elsewhere (a container's cgroup) ``/proc/self/autogroup`` reads empty."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f, open("/proc/self/autogroup") as own:
            return f.read().strip() == "1" and bool(own.read().strip())
    except OSError:
        return False


def autogroup_nice(pid: int) -> int:
    with open(f"/proc/{pid}/autogroup") as f:  # "/autogroup-123 nice 5"
        return int(f.read().rsplit(" ", 1)[1])


def test_a_process_in_a_shared_session_leaves_the_sessions_autogroup_alone(tmp_path: Any) -> None:
    """Niced in someone else's session (a shell's), the whole session, web server included,
    would go down with it; a session leader nices its own autogroup."""
    script = (
        "import os, sys; from shop.pipeline.priority import step_aside\n"
        "if sys.argv[1] == 'leader': os.setsid()\n"
        "step_aside(7); print(open('/proc/self/autogroup').read().split()[-1])"
    )
    if not autogroup_enabled():
        pytest.skip("the kernel's autogroup is off or does not apply to this cgroup: niceness alone decides")
    env = harness.child_env()
    shared = subprocess.run([sys.executable, "-c", script, "shared"], capture_output=True, text=True, env=env, check=True)
    leader = subprocess.run([sys.executable, "-c", script, "leader"], capture_output=True, text=True, env=env, check=True)
    assert shared.stdout.strip() == str(autogroup_nice(os.getpid()))  # this test's own session, untouched
    assert leader.stdout.strip() == "7"


def _backends_of(procs: list[harness.Proc]) -> dict[int, int]:
    """Backend pid -> its niceness, for every PostgreSQL connection the processes hold (matched by
    the client's port in ``pg_stat_activity``)."""
    from django.db import connection

    server_port = int(connection.settings_dict["PORT"] or 5432)
    ports = set()
    for proc in procs:
        main = psutil.Process(proc.pid)
        for p in (main, *main.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                ports |= {c.laddr.port for c in p.net_connections("tcp") if c.raddr and c.raddr.port == server_port}
    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", [list(ports)])
        return {pid: psutil.Process(pid).nice() for (pid,) in cur.fetchall()}


@pytest.mark.pipeline
@pytest.mark.django_db(transaction=True)
def test_a_niced_workers_database_backends_run_at_its_niceness_and_the_relays_do_not(
    tmp_path: Any, catalog: dict[str, int], shop_api: Any, without_shared_pipeline: None
) -> None:
    """Its queries would otherwise take back, in PostgreSQL, the cores the worker gave up."""
    from django.db import connection

    if connection.settings_dict["HOST"] not in ("127.0.0.1", "localhost") or not os.path.isdir("/proc"):
        pytest.skip("the database is reached over a Unix socket or on another machine: backends are matched by TCP port")
    worker = harness.worker(tmp_path, name="nice-db", queues="payments", concurrency=1, beat=False)
    relay = harness.relay(tmp_path)
    try:
        shop_api.place(sku="SKU-1")  # the payment task opens the pool child's connection
        harness.wait_until(lambda: len(_backends_of([worker])) >= 1, 60, 0.3, "the worker's database connection")
        backends = harness.wait_until(
            lambda: (b := _backends_of([worker])) and set(b.values()) == {settings.WORKER_NICENESS_CRITICAL} and b,
            30,
            0.3,
            "the worker's backends to be reniced",
        )
        assert backends, worker.log()[-2000:]
        assert set(_backends_of([relay]).values()) == {0}  # the relay stays at the web server's priority
    finally:
        worker.stop()
        relay.stop()
        from shop.celery import app

        app.control.purge()  # the order's copies for the stages nobody ran here: later tests count the queues


def _may_raise_priority() -> bool:
    """Root, or an ``RLIMIT_NICE`` that lets this user back down to niceness 0."""
    import resource

    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20


def test_a_stopping_worker_takes_back_its_priority_with_its_pool_where_allowed() -> None:
    """At niceness 15 beside anything busy, a worker's warm shutdown got a thirtieth of a core
    and outlasted the demo's 8 s of grace: it was SIGKILLed. Stopping, it goes back to 0 with the
    children it forked (and its session's autogroup) where the system lets it, else stays."""
    script = (
        "import os, time; from shop.pipeline.priority import restore_priority, step_aside\n"
        "os.setsid(); step_aside(15)\n"
        "child = os.fork()\n"
        "if child == 0: time.sleep(30); os._exit(0)\n"
        "restore_priority()\n"
        "group = open('/proc/self/autogroup').read().split()[-1] if os.path.exists('/proc/self/autogroup') else '-'\n"
        "print(os.getpriority(os.PRIO_PROCESS, 0), os.getpriority(os.PRIO_PROCESS, child), group)\n"
        "os.kill(child, 9)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=harness.child_env(), check=True)
    own, child, group = out.stdout.split()
    expected = "0" if _may_raise_priority() else "15"
    assert (own, child) == (expected, expected), out.stderr
    if autogroup_enabled():
        assert group == expected


def test_the_worker_takes_back_its_priority_when_it_is_asked_to_stop() -> None:
    from celery import signals

    import shop.celery

    receivers = [ref() if isinstance(ref, weakref.ref) else ref for _, ref in signals.worker_shutting_down.receivers]
    assert shop.celery._stand_up in receivers
