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

WEB_WORKERS = 2


def commands(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    flower_port: int = 5555,
    beat_schedule: str = ".demo/celerybeat-schedule",
    quiet: bool = False,
) -> dict[str, str]:
    """Process name -> command line. ``python`` and ``celery`` are resolved by the caller.

    ``quiet`` (the demo's console, read by people) leaves out the banners Celery prints at
    start, six workers' worth of configuration; the processes do the same work either way.
    """
    celery = "celery -A shop -q" if quiet else "celery -A shop"
    procs = {
        # WSGI with 2 workers was the fastest arrangement measured for the checkout
        # view; the order page polls the API, so no request holds a thread for long.
        # A worker that dies (OOM killer, SIGKILL) is replaced; without the flag granian
        # itself exits and takes the other worker down with it.
        "web": (
            f"granian --interface wsgi --host {host} --port {port} --workers {WEB_WORKERS} "
            "--workers-kill-timeout 3 --respawn-failed-workers --respawn-interval 1 shop.wsgi:application"
        ),
        "relay": "python manage.py relay",
    }
    for queue in QUEUES:
        procs[f"worker-{queue}"] = f"{celery} worker -Q {queue} -n {queue}@%h --concurrency 2 -l INFO"
    procs["beat"] = f"{celery} beat -l INFO -s {beat_schedule}"
    procs["flower"] = f"celery -A shop flower --conf=shop/flowerconfig.py --address={host} --port={flower_port}"
    return procs


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
