"""The bench's output: the machine it ran on, a table with every figure beside its ceiling, a JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings
from django.db import connection

from bench.scenarios.base import Result


def machine(broker_url: str) -> dict[str, Any]:
    """Cores, memory and the versions of everything measured, so a figure can be reproduced."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "postgresql": _postgres_version(),
        "broker": _broker_version(broker_url),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _postgres_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def _broker_version(url: str) -> str:
    from kombu import Connection

    from shop.pipeline.queues import is_rabbitmq

    if not is_rabbitmq(url):
        return "filesystem broker (shop/local/fs_transport)"
    with Connection(url, connect_timeout=5) as conn:
        conn.connect()
        props = conn.connection.server_properties  # type: ignore[union-attr]
        return f"{props.get('product', 'RabbitMQ')} {props.get('version', '?')}"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=settings.BASE_DIR)
    return done.stdout.strip() if done.returncode == 0 else ""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def rows(results: list[Result], ceilings: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"scenario": r.scenario, **f.as_dict(ceilings)} for r in results for f in r.figures]


def table(results: list[Result], ceilings: dict[str, dict[str, Any]]) -> str:
    """A Markdown table (it reads on a terminal and pastes into the README)."""
    lines = ["| scenario | figure | value | ceiling, same run | ratio |", "|---|---|---|---|---|"]
    for row in rows(results, ceilings):
        limit = f"{row['ceiling']}: {_fmt(row['ceiling_value'])}" if row["ceiling"] else ""
        ratio = f"{row['ratio']:g}x" if row["ratio"] is not None else ""
        lines.append(f"| {row['scenario']} | {row['name']} | {_fmt(row['value'])} {row['unit']} | {limit} | {ratio} |")
    for result in results:
        if result.audit:
            verdict = "clean" if result.audit.get("clean") else f"VIOLATIONS: {'; '.join(result.audit['violations'][:5])}"
            lines.append(f"| {result.scenario} | checker (`manage.py audit`) | {verdict} | | |")
    return "\n".join(lines)


def command_line(argv: list[str]) -> str:
    """The command that made the file, as a reader would type it again (``argv[0]`` is manage.py)."""
    return " ".join(["python", "manage.py", *argv[1:]]) if len(argv) > 1 else ""


def write(
    results: list[Result], ceilings: dict[str, dict[str, Any]], info: dict[str, Any], path: Path, options: dict[str, Any]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(sys.argv),
        "machine": info,
        "options": options,
        "ceilings": ceilings,
        "figures": rows(results, ceilings),
        "scenarios": {
            r.scenario: {"settings": r.settings, "audit": r.audit, "charts": r.charts, "data": r.data} for r in results
        },
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    path.with_suffix(".md").write_text(table(results, ceilings) + "\n")
