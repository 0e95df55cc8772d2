"""The compose stack's monitoring: Prometheus's configuration passes ``promtool check config``,
its start script writes the credentials it names, and Grafana's dashboard asks only for series
that exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness import ROOT

DOCKER = ROOT / "docker"
CONFIG = DOCKER / "prometheus" / "prometheus.yml"


def rendered(tmp_path: Path, token: str = "mt-token", flower: str = "ops:fl-password") -> Path:
    """What docker/prometheus/start.sh makes of the configuration, with its secrets under ``tmp_path``."""
    start = (DOCKER / "prometheus" / "start.sh").read_text()
    script = start.replace("/tmp/", f"{tmp_path}/").replace("/etc/prometheus/shop.yml", str(CONFIG))
    script = script.replace("exec /bin/prometheus", "echo")
    done = subprocess.run(["sh", "-c", script], env={**os.environ, "METRICS_TOKEN": token, "FLOWER_BASIC_AUTH": flower})
    assert done.returncode == 0
    config = tmp_path / "prometheus.yml"
    config.write_text(config.read_text().replace("/tmp/secrets/", f"{tmp_path}/secrets/"))
    return config


def test_the_start_script_writes_every_credential_the_configuration_names(tmp_path: Path) -> None:
    config = yaml.safe_load(rendered(tmp_path).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"shop", "rabbitmq", "flower"}
    assert Path(jobs["shop"]["authorization"]["credentials_file"]).read_text() == "mt-token"
    assert jobs["flower"]["basic_auth"]["username"] == "ops"
    assert Path(jobs["flower"]["basic_auth"]["password_file"]).read_text() == "fl-password"
    assert "mt-token" not in CONFIG.read_text() and "fl-password" not in CONFIG.read_text()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_accepts_the_configuration(tmp_path: Path) -> None:
    done = subprocess.run(["promtool", "check", "config", str(rendered(tmp_path))], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_shows_only_series_the_shop_exports() -> None:
    from shop.ops import metrics
    from shop.pipeline import latency_metrics

    exported = {name for name, _, _ in (*metrics.QUEUE_GAUGES, *metrics.OUTBOX_GAUGES)}
    source = (ROOT / "shop" / "ops" / "metrics.py").read_text()
    exported |= set(re.findall(r'"(shop_[a-z0-9_]+)"', source))
    exported |= {f"shop_stage_latency_{q}_seconds" for q in ("p50", "p95")}
    histograms = (latency_metrics.STAGE_LATENCY, latency_metrics.CHECKOUT_LATENCY)
    exported |= {f"{h._name}{part}" for h in histograms for part in ("_bucket", "_count", "_sum")}
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "shop.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = {name for expr in exprs for name in re.findall(r"\bshop_[a-z0-9_]+", expr)}
    assert asked, "the dashboard shows the shop's own figures"
    assert asked <= exported, asked - exported
