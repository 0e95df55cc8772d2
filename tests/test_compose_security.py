"""The compose stack and Flower open no door with a password from the repository.

Credentials come from the environment (compose refuses to start without them),
ports are published on 127.0.0.1 unless the operator opts in, and Flower asks
for its login on every page, ``/metrics`` included, and cannot run tasks.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.harness import ROOT, wait_until

COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {
    "SECRET_KEY": "sk-" + "k" * 40,
    "POSTGRES_PASSWORD": "pg-sentinel-5f2a",
    "RABBITMQ_PASSWORD": "mq-sentinel-9c1e",
    "FLOWER_BASIC_AUTH": "ops:fl-sentinel-77d0",
    "METRICS_TOKEN": "mt-sentinel-31d4",
    "GRAFANA_PASSWORD": "gf-sentinel-6b8e",
}
MONITORING = {"prometheus", "grafana"}
# Every password the repository has ever shipped, and the brokers' well-known defaults.
KNOWN_PASSWORDS = ("staff-demo-password", "shop:shop", "guest:guest", "change-me-to-a-long-random-string", "dev-only-insecure")
needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")


def compose_config(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``docker-compose config`` with only the given variables (and an empty .env: none from the machine)."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    child = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.endswith("_BIND")}
    child.update(env or SECRETS)
    argv = ["docker-compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config", *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=child, timeout=60)


def resolved(tmp_path: Path, **extra: str) -> dict:
    result = compose_config(tmp_path, **{**SECRETS, **extra})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@needs_compose
@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(tmp_path, missing):
    others = {k: v for k, v in SECRETS.items() if k != missing}
    result = compose_config(tmp_path, "-q", **others)
    assert result.returncode != 0
    assert missing in result.stderr, result.stderr


@needs_compose
def test_every_credential_comes_from_the_environment(tmp_path):
    services = resolved(tmp_path)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    assert services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == SECRETS["RABBITMQ_PASSWORD"]
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == SECRETS["FLOWER_BASIC_AUTH"]
    assert services["prometheus"]["environment"]["METRICS_TOKEN"] == SECRETS["METRICS_TOKEN"]
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_PASSWORD"]
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    for name in set(services) - {"postgres", "rabbitmq"} - MONITORING:
        env = services[name]["environment"]
        assert env["SECRET_KEY"] == SECRETS["SECRET_KEY"], name
        assert f":{SECRETS['POSTGRES_PASSWORD']}@" in env["DATABASE_URL"], name
        assert f":{SECRETS['RABBITMQ_PASSWORD']}@" in env["CELERY_BROKER_URL"], name
        assert env.get("ALLOWED_HOSTS") != "*", name
        assert env.get("FAULTS_ENABLED", "0") == "0", name
        assert env["METRICS_TOKEN"] == SECRETS["METRICS_TOKEN"], name
        if name != "flower":
            assert "FLOWER_BASIC_AUTH" not in env, name
    text = yaml.safe_dump(services)
    for known in KNOWN_PASSWORDS:
        assert known not in text, known
    for source in (COMPOSE, ROOT / ".env.example"):
        for known in KNOWN_PASSWORDS:
            assert known not in source.read_text(), (source.name, known)


def host_ip(port: str | dict) -> str:
    """The address a port is published on; docker-compose 1 prints ``ip:host:container/tcp``, v2 a mapping."""
    if isinstance(port, dict):
        return port.get("host_ip", "0.0.0.0")
    parts = port.split(":")
    return parts[0] if len(parts) == 3 else "0.0.0.0"


def published(services: dict) -> dict[str, set[str]]:
    return {name: {host_ip(p) for p in s["ports"]} for name, s in services.items() if s.get("ports")}


@needs_compose
def test_ports_are_on_localhost_unless_the_operator_opts_in(tmp_path):
    default = published(resolved(tmp_path)["services"])
    assert set(default) == {"web", "flower", "rabbitmq", "prometheus", "grafana"}
    assert all(ips == {"127.0.0.1"} for ips in default.values()), default
    binds = ("FLOWER_BIND", "RABBITMQ_BIND", "SHOP_BIND", "PROMETHEUS_BIND", "GRAFANA_BIND")
    opened = published(resolved(tmp_path, **dict.fromkeys(binds, "0.0.0.0"))["services"])
    assert all(ips == {"0.0.0.0"} for ips in opened.values()), opened


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_flower(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = re.sub(r"--address=\S+ --port=\S+", "", _commands()["flower"])  # the demo's and compose's own
    argv = [sys.executable, "-m", *command.split(), "--address=127.0.0.1", f"--port={port}"]
    child = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    child.update({"FLOWER_DB": str(tmp_path / "flower.db"), **env})
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, cwd=ROOT, env=child, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def _commands() -> dict[str, str]:
    from shop.local.processes import commands

    return commands()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_flower_asks_for_its_login_everywhere_metrics_included_and_runs_no_task(tmp_path):
    login = ("ops", "fl-sentinel-77d0")
    proc, base = start_flower(tmp_path, FLOWER_BASIC_AUTH=":".join(login))
    try:

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "flower.log").read_text()[-3000:]
            try:
                return httpx.get(f"{base}/healthcheck", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 90, interval=0.5, what="Flower to listen")
        for path in ("/metrics", "/", "/api/tasks", "/api/workers"):
            assert httpx.get(f"{base}{path}", timeout=10).status_code == 401, path
            assert httpx.get(f"{base}{path}", auth=("ops", "wrong"), timeout=10).status_code == 401, path
        metrics = httpx.get(f"{base}/metrics", auth=login, timeout=30)
        assert metrics.status_code == 200 and "flower_" in metrics.text
        apply = httpx.post(
            f"{base}/api/task/async-apply/orders.tasks.apply_order_event", auth=login, json={"kwargs": {}}, timeout=30
        )
        assert apply.status_code == 403, apply.text
    finally:
        stop(proc)


def test_flower_refuses_to_start_without_a_login(tmp_path):
    proc, _ = start_flower(tmp_path)
    try:
        assert proc.wait(90) != 0
    finally:
        stop(proc)
    assert "FLOWER_BASIC_AUTH" in (tmp_path / "flower.log").read_text()
