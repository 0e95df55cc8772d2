"""docker-compose.yml runs exactly the processes that ``manage.py demo`` starts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from shop.local.processes import commands

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
INFRA = {"postgres", "rabbitmq", "migrate"}
MONITORING = {"prometheus", "grafana"}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_services_match_the_demo_process_list():
    services = compose()["services"]
    expected = commands(host="0.0.0.0", beat_schedule="/tmp/celerybeat-schedule")
    assert set(services) - INFRA - MONITORING == set(expected)
    for name, command in expected.items():
        assert services[name]["command"] == command, name


def test_django_services_share_one_definition_and_health_checked_dependencies():
    services = compose()["services"]
    for name in set(services) - INFRA - MONITORING:
        assert services[name]["image"] == "order-pipeline:latest", name
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["rabbitmq"]


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed (apt-get install docker-compose)"
)
def test_docker_compose_config_parses(tmp_path):
    from tests.test_compose_security import compose_config

    result = compose_config(tmp_path, "-q")
    assert result.returncode == 0, result.stderr


def test_each_container_weighs_what_its_processes_niceness_weighs():
    """Niceness counts only inside a container's cgroup: cpu_shares carries it across."""
    from django.conf import settings

    from shop.pipeline.priority import cfs_weight, queues_option, worker_niceness

    services = compose()["services"]
    for name, service in services.items():
        command = service.get("command") or ""
        if " worker " in f" {command} ":
            queues = queues_option(command.split(" -Q ", 1)[1].split(" ", 1)[0])
            assert service["cpu_shares"] == cfs_weight(worker_niceness(queues)), name
        elif name == "flower":
            assert service["cpu_shares"] == cfs_weight(int(os.environ.get("FLOWER_NICENESS", "10")))
        else:
            assert "cpu_shares" not in service, name  # the web server, relay, beat and the servers: full weight
    assert cfs_weight(0) == 1024 and settings.WORKER_NICENESS_CRITICAL < settings.WORKER_NICENESS_LOW
