"""Real processes for the pipeline tests: workers, relay, and ways to wait on them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
ALL_QUEUES = "orders,payments,fraud,inventory,shipping,notifications"


def db_url() -> str:
    """The URL of the test database, for child processes."""
    from shop.proof.chaos import database_url

    return database_url()


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = db_url()
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Proc:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        else:
            with contextlib.suppress(ProcessLookupError):  # children left behind by a killed main process
                os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_argv(
    log_dir: Path, *, name: str = "all", queues: str = ALL_QUEUES, concurrency: int = 2, beat: bool = True
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "shop",
        "worker",
        "-Q",
        queues,
        "-n",
        f"{name}@%h",
        "-c",
        str(concurrency),
        "-P",
        "prefork",
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv += ["-B", "-s", str(log_dir / f"{name}-beat-schedule")]
    return argv


def relay_argv() -> list[str]:
    return [sys.executable, "manage.py", "relay"]


def worker(
    log_dir: Path, *, name: str = "all", queues: str = ALL_QUEUES, concurrency: int = 2, beat: bool = True, **env: str
) -> Proc:
    argv = worker_argv(log_dir, name=name, queues=queues, concurrency=concurrency, beat=beat)
    return Proc(f"worker-{name}", argv, log_dir, child_env(**env))


def relay(log_dir: Path, *, name: str = "relay", **env: str) -> Proc:
    return Proc(name, relay_argv(), log_dir, child_env(**env))


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def web_server(log_dir: Path, port: int, *, threads: int, **env: str):
    """A real granian (one worker, ``threads`` blocking threads) on ``port``, answering before it
    is yielded as ``(url, proc)``, and stopped after."""
    import httpx

    from shop.local.processes import argv

    command = (
        f"granian --interface wsgi --host 127.0.0.1 --port {port} --workers 1 --blocking-threads {threads} shop.wsgi:application"
    )
    proc = Proc("web", argv(command), log_dir, child_env(**env))
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/api/products", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(lambda: up() or not proc.alive(), 60, 0.2, "the web server")
        assert proc.alive(), proc.log()[-3000:]
        yield url, proc
    finally:
        proc.stop()


def empty_broker() -> None:
    """Empties every pipeline queue, RabbitMQ's delayed-delivery queues and its dead-letter
    queue. Every suite shares the broker: what an earlier test left there (a
    copy for a stage nobody ran, a retry waiting for its countdown, a message redelivered after
    a restart) names orders whose rows its teardown removed, and would be counted, flagged or
    parked in this test's name."""
    from shop.celery import app
    from shop.pipeline.queues import declare_dead_letters, is_rabbitmq

    with app.connection_for_write() as conn:
        app.control.purge(connection=conn)
        if not is_rabbitmq(app.conf.broker_url):
            return  # the filesystem broker has neither: a worker holds a countdown, poison is parked in the table
        declare_dead_letters(conn).purge()
        for level in range(28):  # celery_delayed_0 .. celery_delayed_27, Celery's native delayed delivery
            try:
                with conn.channel() as channel:
                    channel.queue_purge(f"celery_delayed_{level}")
            except conn.channel_errors:  # not declared on this vhost yet
                continue
