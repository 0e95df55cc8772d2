"""CPU and memory of process trees, grouped by role, read from ``/proc``.

One pass over ``/proc/<pid>/stat`` per sample gives every process's parent, CPU ticks and
start time; a role's processes are its main pids and all their descendants. psutil's
``Process.children(recursive=True)`` rescans ``/proc`` on every call (about 4 ms each on
this machine), so the tree is built once per sample here, and psutil is used for what
``stat`` does not hold: the proportional set size (PSS) of each process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import NamedTuple

import psutil

CLK_TCK = os.sysconf("SC_CLK_TCK")


class ProcStat(NamedTuple):
    ppid: int
    ticks: int  # utime + stime
    start: int  # ticks after boot: with the pid, it tells a process from a later one with a reused pid


def scan_proc() -> dict[int, ProcStat]:
    """Every process's parent, CPU ticks and start time (processes that vanish mid-scan are skipped)."""
    table: dict[int, ProcStat] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()  # the command name may hold spaces and parentheses
        table[int(name)] = ProcStat(int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19]))
    return table


def tree(mains: Iterable[int], table: dict[int, ProcStat]) -> set[int]:
    """The main pids that are alive and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    found: set[int] = set()
    todo = [pid for pid in mains if pid in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def uptime_ticks() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) * CLK_TCK


class CpuMeter:
    """Cores used by each role between two calls of :meth:`measure`.

    A process first seen that started after the previous call counts all its ticks; one that
    existed already (the first call, or a process adopted into a tree) is only a baseline.
    The ticks a process used between the last call and its exit are lost: short-lived
    processes are undercounted, long-running servers and workers are not.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[int, int], int] = {}
        self._at: float | None = None  # monotonic time of the previous call
        self._uptime = 0.0

    def measure(
        self, roles: dict[str, list[int]], table: dict[int, ProcStat] | None = None, *, children: bool = True
    ) -> dict[str, float] | None:
        """``{role: cores}`` since the previous call; None on the first call (a baseline only).
        With ``children=False`` a role is its main pids alone."""
        table = scan_proc() if table is None else table
        now, uptime = time.monotonic(), uptime_ticks()
        seen: dict[tuple[int, int], int] = {}
        used: dict[str, int] = {}
        for role, mains in roles.items():
            used[role] = 0
            for pid in tree(mains, table) if children else {p for p in mains if p in table}:
                stat = table[pid]
                key = (pid, stat.start)
                seen[key] = stat.ticks
                before = self._last.get(key)
                if before is None:
                    before = 0 if stat.start > self._uptime else stat.ticks
                used[role] += max(0, stat.ticks - before)
        previous, self._at, self._last, self._uptime = self._at, now, seen, uptime
        if previous is None:
            return None
        elapsed = max(now - previous, 1e-6)
        return {role: round(ticks / CLK_TCK / elapsed, 3) for role, ticks in used.items()}


def memory(roles: dict[str, list[int]], table: dict[int, ProcStat] | None = None) -> dict[str, dict[str, float | int | None]]:
    """``{role: {"rss_mb", "pss_mb", "processes"}}``: PSS shares each page among the processes
    mapping it, so the PSS of a role's processes adds up to the memory they cost together
    (prefork children share their parent's pages: their RSS would count those again)."""
    table = scan_proc() if table is None else table
    out: dict[str, dict[str, float | int | None]] = {}
    for role, mains in roles.items():
        rss = pss = 0
        pss_known = True
        pids = tree(mains, table)
        for pid in pids:
            try:
                info = psutil.Process(pid).memory_full_info()
                rss, pss = rss + info.rss, pss + info.pss
            except psutil.AccessDenied:
                pss_known = False
                rss += _rss(pid)
            except psutil.NoSuchProcess:
                continue
        out[role] = {
            "rss_mb": round(rss / 2**20, 1),
            "pss_mb": round(pss / 2**20, 1) if pss_known else None,
            "processes": len(pids),
        }
    return out


def _rss(pid: int) -> int:
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0
