"""``manage.py check`` fails when the pipeline map names a task that does not exist, and warns
(``check --database default``, ``migrate``) when the processes could open more connections than
the database server accepts."""

from __future__ import annotations

import importlib

from django.core.checks import Error, Warning


def check_pipeline_map(app_configs=None, **kwargs) -> list[Error]:
    from shop.celery import app
    from shop.pipeline.events import PIPELINE

    errors = []
    for sub in PIPELINE:
        module = sub.task.rsplit(".", 1)[0]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            errors.append(Error(f"{sub.event} -> {sub.task}: cannot import {module}: {exc}", id="shop.E001"))
            continue
        if sub.task not in app.tasks:
            errors.append(Error(f"{sub.event} -> {sub.task}: no such task is registered", id="shop.E001"))
    return errors


def check_connection_budget(app_configs=None, databases=None, **kwargs) -> list[Warning]:
    """The shop's processes must never be refused a connection ("too many clients" is a 500 in
    the middle of a checkout, or a worker's task failing): compare the most they can hold at
    once (``shop.local.processes.connection_budget``) with the server's free slots."""
    from django.db import connections

    from shop.connections import pool_max
    from shop.local.processes import connection_budget

    if not databases or "default" not in databases:
        return []
    with connections["default"].cursor() as cur:
        cur.execute(
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
            " - coalesce(current_setting('reserved_connections', true), '0')::int"
        )
        slots = cur.fetchone()[0]
    budget = connection_budget(pool_max=pool_max())
    if budget["total"] <= slots:
        return []
    parts = ", ".join(f"{name} {n}" for name, n in budget.items() if name != "total")
    return [
        Warning(
            f"the shop's processes may hold {budget['total']} PostgreSQL connections ({parts}), "
            f"more than the {slots} the server accepts",
            hint="raise max_connections, or lower DATABASE_POOL_MAX, the web workers or the workers' concurrency",
            id="shop.W001",
        )
    ]
