"""One process of the bench's own, in a process group of its own, always stopped afterwards."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

log = logging.getLogger("bench")


@contextlib.contextmanager
def running(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Iterator[subprocess.Popen]:
    """Run ``argv`` from the project root, its output in ``log_dir/name.log``; on the way out
    SIGTERM its group (a worker's prefork children, granian's workers), then SIGKILL what is left."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as out:
        popen = subprocess.Popen(
            argv, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    started = time.monotonic()
    try:
        yield popen
    finally:
        stopping = time.monotonic()
        stop(popen)
        log.info("%s ran %.1f s, stopped in %.1f s", name, stopping - started, time.monotonic() - stopping)


def stop(popen: subprocess.Popen, timeout: float = 15) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)  # the group: children that outlived their parent too
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(5)


def log_tail(log_dir: Path, name: str, tail: int = 3000) -> str:
    path = log_dir / f"{name}.log"
    return path.read_text(errors="replace")[-tail:] if path.exists() else ""
