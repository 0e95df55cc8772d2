"""A background thread that records, once per interval, how the shop is coping with a load.

Each sample: the broker's depth and consumers per queue (one broker connection kept open),
the oldest waiting copy per queue (from the handlers' backlog), the outbox's backlog, orders
placed and completed, and the cores each role's processes used since the previous sample;
every ``memory_interval``, the RSS and PSS of each role. The thread has a database connection
of its own (the ORM's, per thread) and measures what it costs itself: its own CPU, and the
CPU of its PostgreSQL backend when that runs on this machine.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import Count, Q

from bench.procstat import CLK_TCK, CpuMeter, ProcStat, memory, scan_proc
from orders.models import TERMINAL, Order
from shop.pipeline.backlog import PROBED_QUEUES, BacklogTracker, BrokerProbe, backlog_by_queue

log = logging.getLogger("bench.sampler")
Roles = Callable[[], dict[str, list[int]]]


class Sampler:
    """``start()``, optionally ``mark(label)`` along the way, then ``stop()`` for the record."""

    def __init__(
        self,
        pids: Roles,
        broker_url: str | None = None,
        interval: float = 1.0,
        memory_interval: float = 10.0,
        transport_options: dict[str, Any] | None = None,
    ) -> None:
        self.pids = pids
        self.broker_url = broker_url
        self.transport_options = transport_options  # the filesystem broker's folders, when not this process's own
        self.started_at = 0.0  # wall clock at start: ``t`` of every sample counts from it
        self.interval = interval
        self.memory_interval = memory_interval
        self.series: list[dict[str, Any]] = []
        self.memory: list[dict[str, Any]] = []
        self.marks: dict[str, float] = {}
        self.errors: dict[str, int] = {}
        self._stop = threading.Event()
        self._first = threading.Event()  # set after the first sample, or when the thread ends
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._t0 = 0.0
        self._cost: dict[str, Any] = {}
        self._meter, self._client = CpuMeter(), CpuMeter()
        self._thread_at: tuple[float, float] | None = None  # (monotonic, thread CPU) at the previous sample
        self._next_memory = 0.0

    def start(self, first_within: float = 10.0) -> Sampler:
        """Start the thread and return after its first sample. The thread's start (its broker and
        database connections, the baseline scan of /proc) holds the GIL beside a load client in
        this process: begun at once, a burst's quiet spell charged its first request 330-370 ms
        in three runs, and its p99 (40 requests) was that request."""
        self._t0, self.started_at = time.monotonic(), time.time()
        self._thread.start()
        self._first.wait(first_within)
        return self

    def mark(self, label: str) -> float:
        """Record that ``label`` happened now (seconds since start); a repeated label gets a number."""
        t = round(time.monotonic() - self._t0, 3)
        name, n = label, 2
        while name in self.marks:
            name, n = f"{label} ({n})", n + 1
        self.marks[name] = t
        return t

    def stop(self) -> dict[str, Any]:
        """Stop the thread (after the sample in progress) and return everything recorded."""
        self._stop.set()
        self._thread.join(timeout=max(30.0, 5 * self.interval))
        return {
            "started_at": self.started_at,
            "interval_s": self.interval,
            "memory_interval_s": self.memory_interval,
            "series": self.series,
            "memory": self.memory,
            "marks": self.marks,
            "errors": self.errors,
            "cost": self._cost,
        }

    # ---- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        probe, tracker = BrokerProbe(self.broker_url, self.transport_options), BacklogTracker()
        cpu0 = time.thread_time()
        backend = self._guard("backend", _backend_pid)
        backend0 = _ticks(backend)
        try:
            self._measure_cpu(scan_proc(), self._roles())  # the baseline
            due = self._t0 + self.interval
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                self._take(probe, tracker)
                self._first.set()
                # The next multiple of the interval: a late sample (a loaded machine) is not followed by a burst.
                due = self._t0 + self.interval * ((time.monotonic() - self._t0) // self.interval + 1)
        except Exception:  # the record so far is kept; the error is counted and logged
            log.exception("the sampler stopped")
            self.errors["sampler"] = self.errors.get("sampler", 0) + 1
        finally:
            self._first.set()
            wall = time.monotonic() - self._t0
            self._cost = _cost(time.thread_time() - cpu0, wall, len(self.series), backend, backend0)
            probe.close()
            connection.close()

    def _take(self, probe: BrokerProbe, tracker: BacklogTracker) -> None:
        """One sample, and the memory figures when they are due."""
        t = time.monotonic() - self._t0
        table, roles = scan_proc(), self._roles()
        sample = self._sample(t, probe, tracker)
        sample["cpu"] = self._measure_cpu(table, roles)
        self.series.append(sample)
        if t >= self._next_memory:
            self.memory.append({"t": round(t, 3), "roles": self._guard("memory", memory, roles, table) or {}})
            self._next_memory = t + self.memory_interval

    def _measure_cpu(self, table: dict[int, ProcStat], roles: dict[str, list[int]]) -> dict[str, float]:
        """Cores per role, plus ``client`` (this process, less this thread; not its children, which a
        caller starting the shop's processes names as roles) and ``sampler`` (this thread)."""
        now, mine = time.monotonic(), time.thread_time()
        cpu = self._meter.measure(roles, table) or {}
        process = (self._client.measure({"client": [os.getpid()]}, table, children=False) or {}).get("client", 0.0)
        if self._thread_at is not None:
            cpu["sampler"] = round((mine - self._thread_at[1]) / max(now - self._thread_at[0], 1e-6), 3)
            cpu["client"] = round(max(0.0, process - cpu["sampler"]), 3)
        self._thread_at = (now, mine)
        return cpu

    def _roles(self) -> dict[str, list[int]]:
        return self._guard("pids", self.pids) or {}

    def _sample(self, t: float, probe: BrokerProbe, tracker: BacklogTracker) -> dict[str, Any]:
        depths = self._guard("queues", probe.depths) or {}
        backlog = self._guard("backlog", tracker.sample)
        rows, outbox = backlog if backlog else ([], {})
        waiting = backlog_by_queue(rows)
        queues = {}
        for name in PROBED_QUEUES:
            broker = depths.get(name, {})
            queues[name] = {
                "depth": broker.get("depth"),
                "consumers": broker.get("consumers"),
                "oldest_age_s": _round(waiting.get(name, {}).get("oldest_age_s")),
                "unprocessed": waiting.get(name, {}).get("count"),
            }
        return {
            "t": round(t, 3),
            "queues": queues,
            "broker": next(iter(depths.values()), {}).get("source"),
            "outbox": {k: v for k, v in outbox.items() if k != "oldest_created_at"},
            "orders": self._guard("orders", _orders) or {},
        }

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One failed figure (the broker restarting, the database away) leaves a gap, not a dead sampler."""
        try:
            return fn(*args)
        except Exception as exc:
            self.errors[what] = self.errors.get(what, 0) + 1
            log.warning("sampler: %s failed: %r", what, exc)
            if what in ("backlog", "orders", "backend"):
                connection.close()  # a broken connection is opened afresh next time
            return None


def _orders() -> dict[str, int]:
    return Order.objects.aggregate(placed=Count("id"), completed=Count("id", filter=Q(status__in=TERMINAL)))


def _backend_pid() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def _ticks(pid: int | None) -> int | None:
    """The CPU ticks of a local process, or None (no such process here: a remote database)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return None


def _cost(thread_cpu: float, wall: float, samples: int, backend: int | None, backend0: int | None) -> dict[str, Any]:
    """What sampling cost: the thread's CPU and its database backend's, in seconds and in cores."""
    backend1 = _ticks(backend)
    db_cpu = (backend1 - backend0) / CLK_TCK if backend0 is not None and backend1 is not None else None
    return {
        "samples": samples,
        "wall_s": round(wall, 3),
        "thread_cpu_s": round(thread_cpu, 3),
        "thread_cores": round(thread_cpu / wall, 4) if wall else None,
        "db_backend_cpu_s": round(db_cpu, 3) if db_cpu is not None else None,
        "db_backend_cores": round(db_cpu / wall, 4) if db_cpu is not None and wall else None,
        "per_sample_ms": round(1000 * thread_cpu / samples, 2) if samples else None,
    }


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
