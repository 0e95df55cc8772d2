"""The faults, one function each: kill, restart and pause real processes and servers."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from shop.pipeline.queues import is_rabbitmq
from shop.proof.chaos.supervisor import Supervisor

log = logging.getLogger("shop.chaos")


def kill_worker_child(sup: Supervisor, rng: random.Random) -> str:
    """SIGKILL one prefork child of a worker (the OOM killer's choice): the task it held is redelivered."""
    candidates = [(name, pid) for name in sup.names("worker-") for pid in sup.children(name)]
    if not candidates:
        return "no worker child to kill"
    name, pid = rng.choice(candidates)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return f"{name} child {pid}"


def kill_worker_main(sup: Supervisor, rng: random.Random) -> str:
    """SIGKILL a worker's main process: its connection drops and the broker requeues what it held."""
    name = rng.choice(sup.names("worker-"))
    with contextlib.suppress(ProcessLookupError):
        os.kill(sup.pid(name), signal.SIGKILL)
    return name


def kill_relay(sup: Supervisor, rng: random.Random) -> str:
    """SIGKILL the relay, wherever it is: between publish and mark, its lease expires and it publishes again."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(sup.pid("relay"), signal.SIGKILL)
    return "relay"


def pause_worker(sup: Supervisor, rng: random.Random, seconds: float = 8.0) -> str:
    """SIGSTOP a worker (a long GC pause, a frozen VM) past the broker's consumer timeout, then SIGCONT."""
    name = rng.choice(sup.names("worker-"))
    sup.pause(name)
    try:
        time.sleep(seconds)
    finally:
        sup.resume(name)
    return f"{name} for {seconds:.0f} s"


def _rabbitmqctl(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def broker_restartable() -> bool:
    """RabbitMQ on this host, with rabbitmqctl to restart it."""
    url = settings.CELERY_BROKER_URL
    local = re.search(r"@(127\.0\.0\.1|localhost)[:/]", url) is not None
    return is_rabbitmq(url) and local and shutil.which("rabbitmqctl") is not None


def broker_start() -> None:
    """Start RabbitMQ's application if it is stopped (heal; idempotent)."""
    _rabbitmqctl("start_app")
    _rabbitmqctl("await_startup")


def restart_broker(sup: Supervisor | None = None, rng: random.Random | None = None, down_seconds: float = 2.0) -> str:
    """``rabbitmqctl stop_app`` / ``start_app``: every connection drops; durable quorum queues keep their messages."""
    _rabbitmqctl("stop_app")
    try:
        time.sleep(down_seconds)
    finally:
        broker_start()
    return f"down {down_seconds:.0f} s"


def own_vhost(name: str) -> str:
    """A RabbitMQ virtual host of its own (created if missing): the run's workers never take
    messages meant for another shop on the same broker. Returns the broker URL for it."""
    url = settings.CELERY_BROKER_URL
    user = re.search(r"://([^:@/]+)", url)
    if name not in _rabbitmqctl("list_vhosts", "-q").split():
        _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, user.group(1) if user else "guest", ".*", ".*", ".*")
    base = url.split("//", 1)[1].split("/", 1)[0]
    return f"{url.split('//', 1)[0]}//{base}/{quote(name, safe='')}"


def delete_vhost(name: str) -> None:
    """Remove a virtual host made by :func:`own_vhost`, with its queues and messages."""
    if name in _rabbitmqctl("list_vhosts", "-q").split():
        _rabbitmqctl("delete_vhost", name)


@contextlib.contextmanager
def short_consumer_timeout(ms: int = 5000) -> Iterator[None]:
    """RabbitMQ's consumer timeout, shortened for channels opened meanwhile, then put back.

    The broker checks the timeout on each channel's tick, once a minute by default;
    the tick is shortened too so that a 5 s timeout fires after about 5 s.
    """

    def get(key: str) -> str | None:
        match = re.search(r"\{ok,\s*(\d+)\}", _rabbitmqctl("eval", f"application:get_env(rabbit, {key})."))
        return match.group(1) if match else None

    defaults = {"consumer_timeout": "1800000", "channel_tick_interval": "60000"}  # never unset: channels read them
    saved = {key: get(key) or default for key, default in defaults.items()}
    _rabbitmqctl("eval", f"application:set_env(rabbit, consumer_timeout, {int(ms)}).")
    _rabbitmqctl("eval", f"application:set_env(rabbit, channel_tick_interval, {min(1000, int(ms))}).")
    try:
        yield
    finally:
        for key, value in saved.items():
            with contextlib.suppress(Exception):
                _rabbitmqctl("eval", f"application:set_env(rabbit, {key}, {value}).")


def _clusters() -> list[list[str]]:
    """This host's PostgreSQL clusters (Debian's postgresql-common): version, name, port, status, owner, data dir."""
    if not (shutil.which("pg_lsclusters") and shutil.which("pg_ctlcluster")):
        return []
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    return [cols for cols in (line.split() for line in listing.splitlines()) if len(cols) >= 6]


def _pg_ctlcluster(cluster: list[str], *action: str) -> None:
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", cluster[0], cluster[1], *action]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def restart_database(sup: Supervisor | None = None, rng: random.Random | None = None) -> str:
    """Restart PostgreSQL in immediate mode: every connection is cut and the server runs crash recovery."""
    with connection.cursor() as cur:
        cur.execute("SELECT current_setting('data_directory'), current_setting('server_version_num')")
        data_dir, version = cur.fetchone()
    connection.close()
    # A cluster of this host's PostgreSQL packages first: root can read its postmaster.pid too.
    for cluster in _clusters():
        if cluster[5] == data_dir:
            _pg_ctlcluster(cluster, "restart", "-m", "immediate")
            return f"cluster {cluster[0]}/{cluster[1]}, immediate"
    from shop.local import embedded_db

    if embedded_db.is_running(Path(data_dir)):
        embedded_db.restart(Path(data_dir), mode="immediate")
        return "embedded server, immediate"
    raise RuntimeError(f"do not know how to restart the PostgreSQL server of {data_dir} (version {version})")


def database_start() -> None:
    """Heal: start this host's PostgreSQL clusters that are down (a restart that failed halfway)."""
    for cluster in _clusters():
        if cluster[3] == "down":
            with contextlib.suppress(subprocess.SubprocessError):
                _pg_ctlcluster(cluster, "start")


def with_db_retry(fn: Callable[[], Any], seconds: float = 60) -> Any:
    """Run an ORM call, reconnecting while the database is restarting."""
    from django.db import Error as DatabaseError

    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except DatabaseError:
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def duplicate_publishing(sup: Supervisor | None = None, rng: random.Random | None = None, seconds: float = 5.0) -> str:
    """Publish every event twice for a while: every consumer sees each message two times."""
    from shop.pipeline import faults

    with_db_retry(lambda: faults.set_switch("duplicate_publish", "1"))
    try:
        time.sleep(seconds)
    finally:
        with_db_retry(lambda: faults.set_switch("duplicate_publish", "0"))
    return f"for {seconds:.0f} s"
