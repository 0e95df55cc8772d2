"""``manage.py demo`` as a newcomer runs it: it comes up, takes an order, shows it in
Flower, and stops everything (children and database) when asked, or recovers when killed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import psutil
import pytest

from tests.fixtures import order_body
from tests.harness import ROOT, wait_until

pytestmark = [pytest.mark.demo, pytest.mark.timeout(420)]
STAFF = ("staff", "staff-demo-password")
STOP_WITHIN = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, state: Path, env: dict[str, str]) -> None:
        self.state = state
        self.port, self.flower_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = state.parent / f"demo-{self.port}.log"
        self.env = {**env, "SHOP_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen | None = None

    def start(self, *args: str) -> Demo:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        argv = [sys.executable, "manage.py", "demo", "--port", str(self.port), "--flower-port", str(self.flower_port), *args]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "The shop is running" in self.log(), 180, interval=0.5, what="the demo to come up")
        except AssertionError:
            self.kill()
            raise AssertionError(self.log()[-5000:]) from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def place_order(self, email: str = "ada@example.com") -> str:
        body = order_body(sku=self.first_sku(), email=email)
        response = httpx.post(f"{self.base}/api/orders", json=body, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def first_sku(self) -> str:
        return next(p["sku"] for p in httpx.get(f"{self.base}/api/products", timeout=10).json() if p["stock"] > 0)

    def wait_status(self, order_id: str, statuses: set[str], timeout: float = 90) -> str:
        def status() -> str | None:
            value = httpx.get(f"{self.base}/api/orders/{order_id}", timeout=10).json()["status"]
            return value if value in statuses else None

        return str(wait_until(status, timeout, interval=0.5, what=f"order {order_id} to reach {statuses}"))

    def kill(self) -> None:
        """After a failure: the demo, its process groups (also those of an earlier, killed demo), its database."""
        from shop.local import embedded_db

        for proc in [*self.descendants(), psutil.Process(self.proc.pid)] if self.proc.poll() is None else []:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        pid_file = self.state / "demo.pids"
        if pid_file.exists():
            for pid in json.loads(pid_file.read_text() or "{}").values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        embedded_db.stop(self.state / "pgdata")


def assert_stops_cleanly(demo: Demo, sig: int = signal.SIGINT) -> None:
    from shop.local import embedded_db

    children = demo.descendants()
    assert children, "the demo started no processes"
    started = time.monotonic()
    demo.proc.send_signal(sig)
    demo.proc.wait(STOP_WITHIN)
    _, alive = psutil.wait_procs(children, timeout=max(1, STOP_WITHIN - (time.monotonic() - started)))
    alive = [p for p in alive if not stopped(p)]
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    assert embedded_db.server_pid(demo.state / "pgdata") is None
    assert time.monotonic() - started < STOP_WITHIN


def stopped(proc: psutil.Process) -> bool:
    """Gone, or a zombie waiting for a parent that is no longer ours to reap it."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def embedded_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "SHOP_BROKER_DIR")}
    return env


@pytest.fixture
def state() -> Iterator[Path]:
    """A private folder (0700, as a clone under /root is): run as root, the embedded server's own
    user cannot enter it, and its data lives in that user's folder instead (test_embedded_root.py)."""
    from shop.local import embedded_db

    path = Path(tempfile.mkdtemp(prefix="demo-"))
    path.chmod(0o700)
    yield path / "state"
    embedded_db.wipe(path / "state" / "pgdata")
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.embedded
def test_demo_on_the_embedded_default_takes_an_order_and_stops_cleanly(state):
    from shop.local import embedded_places

    demo = Demo(state, embedded_env()).start("--fresh")
    try:
        assert "example order  http" in demo.log()
        assert f"database: embedded PostgreSQL in {embedded_places.resolve(state / 'pgdata')}\n" in demo.log()
        if os.geteuid() == 0:  # the private folder is out of the server user's reach: the console says so
            assert f"{embedded_places.SERVER_USER}, the server's user, cannot enter {state}" in demo.log()
        order_id = demo.place_order()
        assert demo.wait_status(order_id, {"delivered", "cancelled"}) == "delivered"
        workers = httpx.get(f"http://127.0.0.1:{demo.flower_port}/api/workers?refresh=1", auth=STAFF, timeout=30).json()
        assert {"orders", "payments", "fraud", "inventory", "shipping", "notifications"} <= {w.split("@")[0] for w in workers}
        assert httpx.get(f"http://127.0.0.1:{demo.flower_port}/api/workers", timeout=10).status_code == 401
        tasks = httpx.get(f"http://127.0.0.1:{demo.flower_port}/api/tasks", auth=STAFF, timeout=10).json()
        assert any(order_id in str(t.get("kwargs")) for t in tasks.values())
        server = psutil.Process(__import__("shop.local.embedded_db", fromlist=["x"]).server_pid(state / "pgdata"))
    except BaseException:
        demo.kill()
        raise
    assert_stops_cleanly(demo)
    assert stopped(server)


@pytest.mark.embedded
def test_demo_killed_with_sigkill_comes_back_with_its_orders(state):
    first = Demo(state, embedded_env()).start("--fresh")
    try:
        order_id = first.place_order()
        first.wait_status(order_id, {"delivered"})
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    second = Demo(state, embedded_env()).start()
    try:
        assert second.wait_status(order_id, {"delivered"}, timeout=10) == "delivered"
        again = second.place_order()
        second.wait_status(again, {"delivered"})
    except BaseException:
        second.kill()
        raise
    assert_stops_cleanly(second, signal.SIGTERM)


def own_services(name: str) -> dict[str, str]:
    """The environment for a demo on RabbitMQ (and PostgreSQL when DATABASE_URL is set) with a
    virtual host and a database of its own, new each time: the test session's workers consume
    the configured vhost, and other runs use the configured database."""
    url = urlsplit(os.environ["CELERY_BROKER_URL"])
    vhost = url.path.removeprefix("/") or "/"
    vhost = f"demo-{name}" if vhost == "/" else f"{vhost}-demo-{name}"
    user = url.username or "guest"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=120)  # may not exist
    for argv in (["add_vhost", vhost], ["set_permissions", "-p", vhost, user, ".*", ".*", ".*"]):
        done = subprocess.run(["rabbitmqctl", "-q", *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"rabbitmqctl {' '.join(argv)}: {done.stderr or done.stdout}"
    env = {**os.environ, "CELERY_BROKER_URL": f"{url.scheme}://{url.netloc}/{quote(vhost, safe='')}"}
    env.pop("SHOP_BROKER_DIR", None)
    if os.environ.get("DATABASE_URL"):
        import psycopg
        from psycopg import sql

        db = urlsplit(os.environ["DATABASE_URL"])
        dbname = f"{os.environ.get('TEST_DATABASE_NAME', 'test_shop')}_demo_{name}".replace("-", "_")
        with psycopg.connect(db._replace(path="/postgres").geturl(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        env["DATABASE_URL"] = db._replace(path=f"/{dbname}").geturl()
    return env


@pytest.mark.rabbitmq
def test_demo_on_postgresql_and_rabbitmq(state):
    demo = Demo(state, own_services("test")).start()
    try:
        order_id = demo.place_order()
        assert demo.wait_status(order_id, {"delivered", "cancelled"}) == "delivered"
    except BaseException:
        demo.kill()
        raise
    assert_stops_cleanly(demo)
