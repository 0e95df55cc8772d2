"""One crashed process must not take the shop down: under ``manage.py demo`` a web worker, the
relay and a Celery worker's main process are each killed with SIGKILL, and after each the shop
keeps serving and completing orders, the demo still running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import psutil
import pytest

from shop.local.supervision import Restarter
from tests.harness import ROOT, wait_until
from tests.test_demo import Demo, assert_stops_cleanly, embedded_env, own_services, state  # noqa: F401 - state is a fixture

pytestmark = pytest.mark.timeout(600)


def pids(demo: Demo) -> dict[str, int]:
    return json.loads((demo.state / "demo.pids").read_text())


def serves(demo: Demo) -> bool:
    try:
        return httpx.get(f"{demo.base}/api/products", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def order_completes(demo: Demo) -> None:
    """Place an order (retrying while the web server recovers) and see it delivered."""
    order_id = wait_until(lambda: _try_order(demo), 60, interval=0.5, what="the shop to take an order")
    assert demo.wait_status(str(order_id), {"delivered", "cancelled"}, timeout=150) == "delivered"


def _try_order(demo: Demo) -> str | None:
    try:
        return new_order(demo)
    except (httpx.HTTPError, AssertionError):
        return None


def new_order(demo: Demo) -> str:
    """An order from a new customer each time: repeated orders from one address go to fraud review."""
    return demo.place_order(email=f"customer-{uuid.uuid4().hex[:12]}@example.com")


def restarted(demo: Demo, name: str, old_pid: int) -> int:
    """The new pid of name, once the demo reported the exit and started it again."""
    message = f"{name} exited unexpectedly (code -9), restarting"
    wait_until(lambda: message in demo.log(), 30, interval=0.3, what=f"the demo to report {name}'s exit")
    wait_until(lambda: pids(demo).get(name) not in (None, old_pid), 60, interval=0.3, what=f"{name} to be restarted")
    assert demo.proc.poll() is None, demo.log()[-3000:]
    return pids(demo)[name]


def kill_a_web_worker(demo: Demo) -> None:
    granian = psutil.Process(pids(demo)["web"])
    workers = granian.children()
    assert len(workers) == 2, workers
    workers[0].send_signal(signal.SIGKILL)
    # granian replaces the worker itself: same main process, two workers again, one of them new.
    wait_until(
        lambda: len(kids := granian.children()) == 2 and workers[0].pid not in {k.pid for k in kids},
        60,
        interval=0.3,
        what="granian to respawn its worker",
    )
    wait_until(lambda: serves(demo), 60, interval=0.3, what="the web server to answer")
    assert pids(demo)["web"] == granian.pid and "web exited unexpectedly" not in demo.log()


@pytest.mark.demo
@pytest.mark.parametrize(
    "services",
    [
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),  # its own database and vhost
        pytest.param("embedded", marks=pytest.mark.embedded),  # PostgreSQL from the wheel, the broker in files
    ],
)
def test_sigkilled_web_worker_relay_and_celery_worker_do_not_stop_the_shop(state, services):  # noqa: F811
    env = own_services("crash") if services == "rabbitmq" else embedded_env()
    demo = Demo(state, env).start(*(["--fresh"] if services == "embedded" else []))
    try:
        order_completes(demo)

        kill_a_web_worker(demo)
        order_completes(demo)

        relay = pids(demo)["relay"]
        in_flight = new_order(demo)  # its events may be claimed but unpublished when the relay dies
        os.kill(relay, signal.SIGKILL)
        restarted(demo, "relay", relay)
        assert demo.wait_status(in_flight, {"delivered", "cancelled"}, timeout=150) == "delivered"
        order_completes(demo)

        worker = psutil.Process(pids(demo)["worker-orders"])
        children = worker.children()
        in_flight = new_order(demo)
        time.sleep(0.2)  # let the order's first messages reach the worker
        worker.send_signal(signal.SIGKILL)
        restarted(demo, "worker-orders", worker.pid)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "the dead worker's children live on"
        assert demo.wait_status(in_flight, {"delivered", "cancelled"}, timeout=150) == "delivered"
        order_completes(demo)
    except BaseException:
        print("\n".join(line for line in demo.log().splitlines() if "carrier" not in line)[-30000:])  # shown on failure
        demo.kill()
        raise
    assert_stops_cleanly(demo)


MANAGER = """
import sys
from shop.local.supervision import RestartingManager
manager = RestartingManager()
manager.add_process("steady", "exec sleep 120")
manager.add_process("crashy", "sleep 0.2; exit 3")
manager.loop()
sys.exit(manager.returncode or 0)
"""


def test_the_manager_restarts_a_crashing_process_with_backoff_and_stops_everything_on_sigterm(tmp_path):
    """The demo's process manager on its own: the crash loop is reported and slowed down, the
    steady process is left alone, and SIGTERM still stops both, restarts included, with no orphan."""
    log_path = tmp_path / "manager.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", MANAGER], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        message = "crashy exited unexpectedly (code 3), restarting"
        wait_until(lambda: log_path.read_text().count(message) >= 4, 60, interval=0.2, what="four restarts")
        text = log_path.read_text()
        assert text.count("steady started") == 1 and "steady exited" not in text
        children = psutil.Process(proc.pid).children(recursive=True)
        steady = [c for c in children if c.cmdline()[:2] == ["sleep", "120"]]
        assert len(steady) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 143
        _, alive = psutil.wait_procs([*children, *steady], timeout=10)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert "restarting" not in log_path.read_text().split("SIGTERM received")[-1]
    finally:
        proc.kill()
        proc.wait()


def test_restart_delays_grow_while_a_process_keeps_crashing_and_reset_once_it_ran_a_while():
    now = [1000.0]
    restarter = Restarter(first=0.5, ceiling=2.0, stable_after=10.0, clock=lambda: now[0])
    nobody = 2**22 + 1  # above pid_max's default: no process group to reap
    delays = []
    for _ in range(4):
        restarter.started("x")
        now[0] += 1  # it died a second after its start
        restarter.exited("x", pid=nobody, code=1)
        assert restarter.due() == []
        now[0] += restarter.delays["x"]
        assert restarter.due() == ["x"] and restarter.due() == []
        delays.append(restarter.delays["x"])
    assert delays == [0.5, 1.0, 2.0, 2.0] and restarter.counts == {"x": 4}
    restarter.started("x")
    now[0] += 11  # it ran longer than stable_after
    assert restarter.exited("x", pid=nobody, code=1) == "x exited unexpectedly (code 1), restarting"
    assert restarter.delays["x"] == 0.5 and restarter.pending("x")
    restarter.cancel()
    assert not restarter.pending("x") and restarter.due() == []


def test_the_pid_file_is_never_seen_half_written(tmp_path):
    """The pid file is rewritten at every restart while others read it (``kill_leftovers``, the
    tests above): a reader sees the old list or the new one, never an empty or cut file."""
    from shop.management.commands.demo import DemoManager

    pid_file = tmp_path / "demo.pids"
    manager = DemoManager(pid_file)
    manager.write_pids({"web": 1})
    done = threading.Event()

    def rewrite() -> None:
        for n in range(20_000):
            manager.write_pids({f"process-{i}": n for i in range(40)})
        done.set()

    writer = threading.Thread(target=rewrite)
    writer.start()
    torn = 0
    while not done.is_set():
        try:
            json.loads(pid_file.read_text())
        except ValueError:
            torn += 1
    writer.join()
    assert torn == 0, f"{torn} reads saw a half-written pid file"
