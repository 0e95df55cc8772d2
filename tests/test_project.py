"""Project-wide checks: migrations are in step with the models, and the pipeline map
names only tasks that exist, each on one queue."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from shop import checks
from shop.pipeline import events


@pytest.mark.django_db
def test_migrations_are_in_step_with_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_the_pipeline_map_names_registered_tasks():
    assert checks.check_pipeline_map() == []


def test_a_task_missing_from_the_map_fails_the_system_check(monkeypatch):
    broken = (*events.PIPELINE, events.Subscription("order.placed", "orders.tasks.no_such_task", "orders"))
    monkeypatch.setattr(events, "PIPELINE", broken)
    errors = checks.check_pipeline_map()
    assert [e.id for e in errors] == ["shop.E001"]
    assert "no_such_task" in errors[0].msg


def test_every_event_with_subscribers_fans_out_to_distinct_tasks():
    for event in {s.event for s in events.PIPELINE}:
        tasks = [s.task for s in events.subscribers(event)]
        assert len(tasks) == len(set(tasks)), event
    assert set(events.task_queues().values()) <= set(events.QUEUES)
