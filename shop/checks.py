"""``manage.py check`` fails when the pipeline map names a task that does not exist."""

from __future__ import annotations

import importlib

from django.core.checks import Error


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
