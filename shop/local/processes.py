"""The processes of a running shop, defined once.

``manage.py demo`` starts exactly these (with honcho), and ``docker-compose.yml``
runs the same commands, one service each; ``tests/test_compose.py`` keeps the
two in step. Scaling a stage means running more of one worker, on any machine,
against the same broker and database.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from shop.pipeline.events import QUEUES
from shop.pipeline.priority import CRITICAL_QUEUES

WEB_WORKERS = 2
# Threads per web worker (granian's --blocking-threads; its default is 256 per worker on a
# 1024 backlog). Twice the pool: a request beyond the pool waits at most DATABASE_POOL_TIMEOUT
# for a connection and is then answered 503, instead of queueing with no bound.
WEB_THREADS = 16
# Order-page streams per web worker (SSE, shop/storefront/stream.py): each holds a blocking thread
# for its whole life but no database connection (it borrows one per read), so granian runs this
# many threads more and the storefront answers the stream past it 503 (the page polls): streams
# can never take the WEB_THREADS that checkouts need. Equal to shop.storefront.stream.MAX_OPEN.
WEB_STREAMS = 64
# Django's psycopg pool in each web worker: at most this many connections (DATABASE_POOL_MAX).
WEB_POOL_MAX = 8
WORKER_CONCURRENCY = 2
# Connections kept free for people and one-off commands: psql, manage.py migrate/shell/audit.
HEADROOM = 10
# The arrangements: "default", a worker group per queue (as compose runs it, each scaled on
# its own), and "small", for a laptop or a 1-2 core box: one web worker, one worker for the
# stages that decide an order and one for the background (shipping, emails), about half the
# processes and memory. The same commands, queues and settings otherwise.
ARRANGEMENTS = ("default", "small")


def commands(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    flower_port: int = 5555,
    beat_schedule: str = ".demo/celerybeat-schedule",
    quiet: bool = False,
    arrangement: str = "default",
) -> dict[str, str]:
    """Process name -> command line. ``python`` and ``celery`` are resolved by the caller.

    A worker's process is named ``worker-<node>`` for its node name ``<node>@host``.

    ``quiet`` (the demo's console, read by people) leaves out the banners Celery prints at
    start, six workers' worth of configuration; the processes do the same work either way.
    """
    celery = "celery -A shop -q" if quiet else "celery -A shop"
    procs = {
        # WSGI with 2 workers was the fastest arrangement measured for the checkout
        # view; an order page's stream holds one of the WEB_STREAMS threads, nothing else does for long.
        # A worker that dies (OOM killer, SIGKILL) is replaced; without the flag granian
        # itself exits and takes the other worker down with it.
        "web": (
            f"granian --interface wsgi --host {host} --port {port} --workers {WEB_WORKERS} "
            f"--blocking-threads {WEB_THREADS + WEB_STREAMS} --workers-kill-timeout 3 "
            "--respawn-failed-workers --respawn-interval 1 shop.wsgi:application"
        ),
        "relay": "python manage.py relay",
    }
    if arrangement == "small":
        procs["web"] = procs["web"].replace(f"--workers {WEB_WORKERS} ", "--workers 1 ")
        critical = ",".join(q for q in QUEUES if q in CRITICAL_QUEUES)
        background = ",".join(q for q in QUEUES if q not in CRITICAL_QUEUES)
        procs["worker-critical"] = f"{celery} worker -Q {critical} -n critical@%h --concurrency {WORKER_CONCURRENCY} -l INFO"
        procs["worker-background"] = f"{celery} worker -Q {background} -n background@%h --concurrency 1 -l INFO"
    elif arrangement == "default":
        for queue in QUEUES:
            procs[f"worker-{queue}"] = f"{celery} worker -Q {queue} -n {queue}@%h --concurrency {WORKER_CONCURRENCY} -l INFO"
    else:
        raise ValueError(f"no arrangement {arrangement!r}: choose one of {', '.join(ARRANGEMENTS)}")
    procs["beat"] = f"{celery} beat -l INFO -s {beat_schedule}"
    procs["flower"] = f"celery -A shop flower --conf=shop/flowerconfig.py --address={host} --port={flower_port}"
    return procs


def connection_budget(
    procs: dict[str, str] | None = None, *, pool_max: int = WEB_POOL_MAX, headroom: int = HEADROOM
) -> dict[str, int]:
    """The most PostgreSQL connections these processes can hold at once, by process, and ``total``.

    A web worker holds at most its pool's ``max_size`` (however many threads it runs) plus the
    LISTEN connection that wakes its order streams (shop/storefront/order_events.py); every
    other process keeps one persistent connection per thread of work: a Celery worker one per
    pool process plus one for its parent, the relay one plus its LISTEN connection, beat and
    Flower one each at most. ``total`` adds ``headroom`` for people and one-off commands; the
    server needs ``max_connections`` of at least that plus its superuser-reserved slots
    (``shop.checks.check_connection_budget`` compares them on a running server).
    """
    budget = {}
    for name, command in (procs if procs is not None else commands()).items():
        args = shlex.split(command)
        if name == "web":
            budget[name] = _option(args, "--workers", 1) * (pool_max + 1)
        elif " worker " in f" {command} ":
            budget[name] = _option(args, "--concurrency", WORKER_CONCURRENCY) + 1
        elif name == "relay":
            budget[name] = 2
        else:
            budget[name] = 1
    budget["headroom"] = headroom
    budget["total"] = sum(budget.values())
    return budget


def worker_serving(queue: str, procs: dict[str, str]) -> str:
    """The name of the worker process that consumes ``queue``."""
    for name, command in procs.items():
        args = shlex.split(command)
        if name.startswith("worker-") and "-Q" in args and queue in args[args.index("-Q") + 1].split(","):
            return name
    raise KeyError(f"no worker consumes {queue}")


def _option(args: list[str], flag: str, default: int) -> int:
    return int(args[args.index(flag) + 1]) if flag in args else default


def argv(command: str) -> list[str]:
    """A command of :func:`commands` as an argv for this interpreter's environment.

    ``python`` and ``celery`` run under this interpreter, other programs from its
    virtualenv when they are there, so a child never picks up another installation.
    """
    program, *rest = shlex.split(command)
    if program == "python":
        return [sys.executable, *rest]
    if program == "celery":
        return [sys.executable, "-m", "celery", *rest]
    local = Path(sys.executable).parent / program
    return [str(local) if local.exists() else program, *rest]
