"""Who gets the cores in a spike: the web server, then the stages that decide an order, then the rest.

On a small machine every process shares the same cores, and a burst of checkouts is also a
burst of pipeline work: without a rule, the workers take the CPU that the checkouts need,
and emails and carrier polls take it from the payment authorisations. The rule is the
kernel's own: worker processes run at a higher niceness than the web server and the relay
(which stay at 0), the low-priority stages higher still. Under CFS a process at niceness 5
weighs a third of one at 0, one at 15 about a thirtieth: when the cores are free every
process runs at full speed, and when they are not, the checkout goes first and the
low-priority queues wait and catch up. Nothing is dropped or reordered inside a queue, and
more workers on more machines still scale each stage.

A worker's queries run in its PostgreSQL backend, a process of its own at niceness 0: on a
machine where the database shares the cores, that backend would take back from the checkout
what its worker gave up. So a niced worker also renices the backend of each connection it
opens (:func:`nice_own_backend`), where the operating system lets it (the same user, as with
the embedded PostgreSQL, or root) and only once ``/proc`` shows that the process is the
PostgreSQL backend serving this very connection; a database on another machine or in another
container is left alone.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from typing import Any

from django.conf import settings

log = logging.getLogger("shop.priority")

# The stages that decide an order: payment authorisation and capture, fraud screening, stock,
# and the join that turns their answers into the order's state. Their latency is the
# customer's wait; emails, labels and carrier polls can run a little later.
CRITICAL_QUEUES: frozenset[str] = frozenset({"orders", "payments", "fraud", "inventory"})


def is_critical(queue: str) -> bool:
    return queue in CRITICAL_QUEUES


def worker_niceness(queues: Iterable[str] | None) -> int:
    """The niceness of a worker serving ``queues`` (``None``: every queue): the most urgent
    queue it serves decides, so a worker that also takes payments is never held back."""
    served = list(queues or ())
    if not served or any(is_critical(queue) for queue in served):
        return settings.WORKER_NICENESS_CRITICAL
    return settings.WORKER_NICENESS_LOW


def cfs_weight(niceness: int) -> int:
    """The scheduler's weight of a niceness (each step about 1.25 times lighter; 0 weighs 1024):
    what compose's ``cpu_shares`` gives a container, whose niceness counts only inside it."""
    return round(1024 / 1.25**niceness)


def step_aside(niceness: int) -> int:
    """Lower this process's priority to ``niceness`` (inherited by the children it forks).
    Never raises a priority: a process already started nicer stays as nice as it is."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
        current = niceness
    _nice_own_autogroup(current)
    return current


def restore_priority() -> None:
    """A stopping worker takes back the web server's priority, where the system lets it (root,
    ``CAP_SYS_NICE``, a raised ``RLIMIT_NICE``): its warm shutdown is a little work (finish
    the task in hand, stop the pool), and at niceness 15 beside anything busy it got a thirtieth
    of a core, past the supervisor's grace (the demo's 8 s, compose's 10 s) and then SIGKILLed.
    Its process group (the pool children, forked niced) and its own autogroup go back to 0;
    elsewhere the niceness stays and the shutdown is only slower."""
    try:
        if os.getpgid(0) == os.getpid():
            os.setpriority(os.PRIO_PGRP, 0, 0)
        else:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError as exc:  # not privileged to raise a priority: nothing to take back
        log.debug("the stopping worker keeps its niceness: %s", exc)
        return
    if os.getsid(0) == os.getpid() and os.path.exists(AUTOGROUP):
        try:
            with open(AUTOGROUP, "w") as f:
                f.write("0")
        except OSError as exc:
            log.debug("the stopping worker's autogroup keeps its niceness: %s", exc)


AUTOGROUP = "/proc/self/autogroup"


def _nice_own_autogroup(niceness: int) -> None:
    """With the kernel's autogroup on (``kernel.sched_autogroup_enabled``, the default of many
    distributions), CFS first shares the cores between sessions, each at its autogroup's own
    niceness, and only then between the processes of a session: a process's niceness counts
    against its own session alone. Every process of the demo and the bench is started in a
    session of its own, so six workers at niceness 5 weighed six times the web server, and
    niceness did nothing for the checkout (at 20 orders/s its p50 was 512 ms; 24 ms with this,
    ``bench checkout`` in one session).
    A session leader (its session holds only itself and the children it forks) therefore sets
    its autogroup to the same niceness; a process in someone else's session (a shell's) leaves
    the session alone, which would take the web server down with it."""
    if os.getsid(0) != os.getpid() or not os.path.exists(AUTOGROUP):
        return
    try:
        with open(AUTOGROUP) as f:  # "/autogroup-123 nice 0"
            current = int(f.read().rsplit(" ", 1)[1])
        if niceness > current:
            with open(AUTOGROUP, "w") as f:
                f.write(str(niceness))
    except (OSError, ValueError, IndexError) as exc:  # no autogroup here, or not allowed: niceness alone
        log.info("this process's autogroup keeps its niceness: %s", exc)


def queues_option(value: object) -> list[str]:
    """Celery's ``-Q`` as the worker received it: a list, a comma-separated string, or nothing."""
    if not value:
        return []
    if isinstance(value, str):
        return [queue.strip() for queue in value.split(",") if queue.strip()]
    return [str(queue) for queue in value]  # type: ignore[attr-defined]


def _client_marker(fd: int) -> str | None:
    """How PostgreSQL's process title names the client on this socket: ``(port)`` for TCP on
    this machine, ``[local]`` for a Unix socket; None for a server elsewhere."""
    with socket.socket(fileno=os.dup(fd)) as sock:
        if sock.family == socket.AF_UNIX:
            return "[local]"
        host = sock.getpeername()[0]
        if host not in ("127.0.0.1", "::1"):
            return None
        return f"({sock.getsockname()[1]})"


def backend_serving(raw: Any) -> int | None:
    """The pid of the local PostgreSQL backend of the psycopg connection ``raw``, or None when
    it cannot be told for sure (a remote server, another pid namespace, a pooler between)."""
    pid = raw.info.backend_pid
    marker = _client_marker(raw.fileno())
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().decode(errors="replace")
    except OSError:
        return None
    return pid if marker and title.startswith("postgres:") and marker in title else None


def nice_own_backend(sender: Any = None, connection: Any = None, **kwargs: Any) -> None:
    """``connection_created`` in a niced worker: run the new connection's backend at the
    worker's niceness (never raising its priority), or leave it and say why once."""
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness <= 0 or connection is None or connection.vendor != "postgresql":
        return
    pid = backend_serving(connection.connection)
    if pid is None:
        return
    try:
        if os.getpriority(os.PRIO_PROCESS, pid) < niceness:
            os.setpriority(os.PRIO_PROCESS, pid, niceness)
    except OSError as exc:  # another user's backend, without the privilege to renice it
        if not _refused:
            _refused.append(pid)
            log.info("the database backends stay at their niceness: %s", exc)


_refused: list[int] = []
