"""Restart a process that exits on its own, as a deployment's supervisor does.

Under compose every service has ``restart: unless-stopped``; ``manage.py demo`` and the
chaos runner do the same with the :class:`Restarter` here, so that one crashed process
(a worker killed by the OOM killer, a relay hit by SIGKILL) is replaced instead of ending
the shop. :class:`RestartingManager` is honcho's manager with that policy: honcho alone
stops every process as soon as one exits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable

import honcho.manager

EXIT_MESSAGE = "{name} exited unexpectedly (code {code}), restarting"


def reap_group(pid: int) -> None:
    """Kill what is left of a dead process's group: the prefork children of a worker whose main
    process died would otherwise hold their tasks and connections, as a container runtime knows."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Restarter:
    """When to restart each process that exited: after ``first`` seconds, doubling up to ``ceiling``
    while it keeps dying within ``stable_after`` seconds of its start (a crash loop must not spin),
    as Docker's restart policy does. ``counts`` is the restarts done, per process."""

    def __init__(
        self,
        *,
        first: float = 0.5,
        ceiling: float = 10.0,
        stable_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first, self.ceiling, self.stable_after, self.clock = first, ceiling, stable_after, clock
        self.counts: dict[str, int] = {}
        self.delays: dict[str, float] = {}  # the last delay chosen, per process
        self._started: dict[str, float] = {}
        self._due: dict[str, float] = {}

    def started(self, name: str) -> None:
        self._started[name] = self.clock()

    def exited(self, name: str, pid: int, code: int | None) -> str:
        """Reap the process group, schedule the restart, and return the line to report."""
        reap_group(pid)
        now = self.clock()
        ran = now - self._started.get(name, now)
        previous = self.delays.get(name)
        delay = self.first if previous is None or ran >= self.stable_after else min(previous * 2, self.ceiling)
        self.delays[name] = delay
        self._due[name] = now + delay
        return EXIT_MESSAGE.format(name=name, code=code)

    def pending(self, name: str) -> bool:
        return name in self._due

    def due(self) -> list[str]:
        """The processes whose restart time has come; each is returned once."""
        now = self.clock()
        names = [name for name, at in self._due.items() if at <= now]
        for name in names:
            del self._due[name]
            self.counts[name] = self.counts.get(name, 0) + 1
        return names

    def cancel(self) -> None:
        """Stopping: no restart is still to come."""
        self._due.clear()


class RestartingManager(honcho.manager.Manager):
    """honcho's manager, except that a process exiting on its own is reported and restarted.

    Only SIGINT or SIGTERM to the manager stops everything: SIGTERM to each process, SIGKILL to
    the process groups still there after ``honcho.manager.KILL_WAIT`` seconds; ``killed`` names
    those. ``on_started`` runs whenever the set of pids changes with every process running (a pid
    file for leftovers, say).
    """

    def __init__(self, restarter: Restarter | None = None, on_started: Callable[[dict[str, int]], None] | None = None) -> None:
        super().__init__()
        self.restarter = restarter or Restarter()
        self.on_started = on_started
        self._spawning: set[str] = set()
        self.killed: set[str] = set()

    def loop(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._start()
        self._spawning = set(self._processes)
        kill_at = None
        while True:
            try:
                msg = self.events.get(timeout=0.1)
            except queue.Empty:
                msg = None
            if msg is not None:
                self._handle(msg)
            if not self._terminating:
                for name in self.restarter.due():
                    self._start_one(name)
            elif msg is None and self._all_stopped() and not self._still_spawning():
                break  # every process stopped and its output printed
            elif kill_at is None:
                kill_at = time.monotonic() + honcho.manager.KILL_WAIT
            elif time.monotonic() > kill_at:
                self.kill()
                kill_at = time.monotonic() + honcho.manager.KILL_WAIT
        if self._terminating:
            self._system_print(
                f"had to kill: {', '.join(sorted(self.killed))}\n" if self.killed else "every process exited on its own\n"
            )

    def _killall(self, force: bool = False) -> None:
        """SIGTERM to each process itself, as a container runtime signals a container's first
        process: a Celery worker then lets its pool children finish the tasks they run (a warm
        shutdown) and stops them, granian its workers. Signalled as a group, those children would
        get SIGTERM directly and die mid-task. SIGKILL goes to the whole group, and is remembered."""
        for name, p in self._processes.items():
            if "returncode" in p or p.get("pid") is None:
                continue
            if force:
                self._system_print(f"sending SIGKILL to {name} (pid {p['pid']}): still running\n")
                self.killed.add(name)
                reap_group(p["pid"])
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p["pid"], signal.SIGTERM)

    def _still_spawning(self) -> bool:
        """A restarted process that has not reported its start yet (and could not fail to)."""
        self._spawning = {name for name in self._spawning if self._processes[name]["process"].is_alive()}
        return bool(self._spawning)

    def terminate(self) -> None:
        self.restarter.cancel()
        super().terminate()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._system_print(f"{honcho.manager.SIGNALS[signum]['name']} received\n")
        self.returncode = honcho.manager.SIGNALS[signum]["rc"]
        self.terminate()

    def _handle(self, msg: honcho.manager.Message) -> None:
        p = self._processes[msg.name] if msg.type != "line" else None
        if p is None:
            self._printer.write(msg)
        elif msg.type == "start":
            self._spawning.discard(msg.name)
            p["pid"] = msg.data["pid"]
            p.pop("returncode", None)
            self.restarter.started(msg.name)
            self._system_print(f"{msg.name} started (pid={p['pid']})\n")
            if self._terminating:  # started while everything stops: stop it too
                self._procmgr.terminate(p["pid"])
            elif self.on_started and self._all_started() and not self._any_stopped():
                self.on_started({name: proc["pid"] for name, proc in self._processes.items()})
        elif msg.type == "stop":
            p["returncode"] = msg.data["returncode"]
            p["process"].join(5)
            if self._terminating:
                reap_group(p["pid"])  # what it left behind in its group, as a container's end does
                self._system_print(f"{msg.name} stopped (rc={p['returncode']})\n")
            else:
                self._system_print(self.restarter.exited(msg.name, p["pid"], p["returncode"]) + "\n")

    def _start_one(self, name: str) -> None:
        p = self._processes[name]
        p["process"] = multiprocessing.Process(name=name, target=p["obj"].run, args=(self.events, True))
        self._spawning.add(name)
        p["process"].start()
