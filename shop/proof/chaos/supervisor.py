"""Run the shop's processes and restart whatever dies, as a deployment's supervisor would."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil
from django.conf import settings
from django.db import connection

from shop.local.processes import argv, commands
from shop.local.supervision import Restarter

log = logging.getLogger("shop.chaos")
ROOT = Path(settings.BASE_DIR)


def database_url() -> str:
    """The URL of the database Django is using, for child processes."""
    db = connection.settings_dict
    host = db.get("HOST") or "localhost"
    host = quote(host, safe="") if host.startswith("/") else host
    auth = quote(db.get("USER") or "postgres", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgresql://{auth}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


# ---- Supervision ------------------------------------------------------------


@dataclass
class Service:
    name: str
    argv: list[str]
    popen: subprocess.Popen | None = None
    paused: bool = False


class Supervisor:
    """Start processes, each in its own process group, and restart any that exits.

    The restart policy is ``manage.py demo``'s (:class:`shop.local.supervision.Restarter`): the
    rest of the dead process's group is killed too (the prefork children of a worker whose
    main process died), as a container runtime would, and the restart follows a short backoff.
    """

    def __init__(self, argvs: dict[str, list[str]], env: dict[str, str], log_dir: Path) -> None:
        self.services = {name: Service(name, argv) for name, argv in argvs.items()}
        self.env = env
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.restarter = Restarter()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        for service in self.services.values():
            self._spawn(service)
        self._thread.start()

    def _spawn(self, service: Service) -> None:
        with open(self.log_dir / f"{service.name}.log", "ab") as out:
            service.popen = subprocess.Popen(
                service.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.restarter.started(service.name)

    def _watch(self) -> None:
        while not self._stop.wait(0.3):
            with self._lock:
                if self._stop.is_set():
                    return
                for service in self.services.values():
                    popen = service.popen
                    if popen is not None and popen.poll() is not None and not self.restarter.pending(service.name):
                        log.warning(self.restarter.exited(service.name, popen.pid, popen.returncode))
                for name in self.restarter.due():
                    self._spawn(self.services[name])

    def pid(self, name: str) -> int:
        popen = self.services[name].popen
        assert popen is not None
        return popen.pid

    def children(self, name: str) -> list[int]:
        with contextlib.suppress(psutil.Error):
            return [c.pid for c in psutil.Process(self.pid(name)).children()]
        return []

    def names(self, prefix: str) -> list[str]:
        return [name for name in self.services if name.startswith(prefix)]

    def pause(self, name: str) -> None:
        self.services[name].paused = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid(name), signal.SIGSTOP)

    def resume(self, name: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid(name), signal.SIGCONT)
        self.services[name].paused = False

    def resume_all(self) -> None:
        for name, service in self.services.items():
            if service.paused:
                self.resume(name)

    def restarts(self) -> dict[str, int]:
        return dict(self.restarter.counts)

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.resume_all()
        live = [s.popen for s in self.services.values() if s.popen is not None and s.popen.poll() is None]
        for popen in live:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for popen in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(max(0.1, deadline - time.monotonic()))
        for service in self.services.values():
            if service.popen is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(service.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    service.popen.wait(5)


def shop_processes(*, port: int, state_dir: Path, concurrency: int = 2) -> dict[str, list[str]]:
    """The demo's processes (``shop/local/processes.py``) minus Flower, as argv lists."""
    argvs = {}
    for name, command in commands(port=port, beat_schedule=str(state_dir / "celerybeat-schedule")).items():
        if name == "flower":
            continue
        command = command.replace("--concurrency 2", f"--concurrency {concurrency}")
        command = command.replace("--workers 2 ", "--workers 1 ")
        argvs[name] = argv(command)
    return argvs
