"""The relay's heartbeat: a running relay is seen alive on the operations page and in /metrics,
a stopped one as stopped, and one killed without a word turns stale after three missed beats."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from django.test import override_settings

from shop.ops import snapshot
from shop.pipeline import heartbeat
from tests import harness

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


def state_of(relay_pid: int) -> str | None:
    for row in heartbeat.relays():
        if row["relay"].endswith(f":{relay_pid}"):
            return row["state"]
    return None


@override_settings(RELAY_HEARTBEAT_SECONDS=1.0)
def test_a_relay_is_alive_while_it_runs_stopped_after_a_clean_stop_and_stale_when_killed(
    without_shared_pipeline: None, tmp_path: Any, client: Any, django_user_model: Any
) -> None:
    relay = harness.relay(tmp_path, RELAY_HEARTBEAT_SECONDS="1")
    try:
        harness.wait_until(lambda: state_of(relay.pid) == "alive", 30, what="the relay's first beat")
        snapshot.forget()
        outbox = snapshot.build_snapshot()["outbox"]
        assert outbox["relays_alive"] >= 1 and any(r["relay"].endswith(f":{relay.pid}") for r in outbox["relays"])
        client.force_login(django_user_model.objects.create_user("hb-staff", password="x" * 20, is_staff=True))
        assert "shop_relays_alive 1.0" in client.get("/metrics").content.decode()
    finally:
        relay.stop()
    assert state_of(relay.pid) == "stopped", relay.log()[-2000:]

    killed = harness.relay(tmp_path, name="relay-killed", RELAY_HEARTBEAT_SECONDS="1")
    harness.wait_until(lambda: state_of(killed.pid) == "alive", 30, what="the second relay's first beat")
    killed.signal(signal.SIGKILL)
    harness.wait_until(lambda: not killed.alive(), 10, what="the relay to die")
    harness.wait_until(lambda: state_of(killed.pid) == "stale", 10, what="its heartbeat to go stale")
    killed.stop()
