"""The simulated outside world's pace: near zero in the tests, a viewer's pace in the demo."""

from __future__ import annotations

import time
import uuid

import pytest

from shop.management.commands import demo
from shop.pipeline import faults


def test_a_latency_switch_sleeps_its_milliseconds_give_or_take_half(monkeypatch, settings):
    settings.FAULTS_ENABLED = True
    monkeypatch.setenv("FAULT_CARRIER_LABEL_MS", "200")
    monkeypatch.setattr(faults, "_overrides", dict)
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)

    for _ in range(50):
        faults.simulated_delay("carrier_label_ms")

    assert len(slept) == 50 and all(0.1 <= s <= 0.3 for s in slept)
    assert max(slept) - min(slept) > 0.02, "jittered, not one fixed wait"


def test_zero_or_switched_off_means_no_wait(monkeypatch, settings):
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail(f"slept {s}"))
    monkeypatch.setattr(faults, "_overrides", dict)
    settings.FAULTS_ENABLED = True
    monkeypatch.setenv("FAULT_FRAUD_LATENCY_MS", "0")
    faults.simulated_delay("fraud_latency_ms")
    settings.FAULTS_ENABLED = False  # production: the environment's switches are not read
    monkeypatch.setenv("FAULT_FRAUD_LATENCY_MS", "900")
    faults.simulated_delay("fraud_latency_ms")


def test_the_demo_paces_every_simulated_service_within_the_ranges_it_promises():
    switches = {name.removeprefix("FAULT_").lower(): float(v) for name, v in demo.DEMO_PACING.items()}
    assert set(switches) <= set(faults.SWITCHES)
    payment = (0.5 * switches["gateway_latency_ms"] / 1000, 1.5 * switches["gateway_latency_ms"] / 1000)
    fraud = (0.5 * switches["fraud_latency_ms"] / 1000, 1.5 * switches["fraud_latency_ms"] / 1000)
    assert payment[0] >= 0.5 and payment[1] <= 2
    assert fraud[0] >= 0.3 and fraud[1] <= 1
    assert switches["carrier_label_ms"] == 1000
    assert switches["carrier_delivery_seconds"] - switches["carrier_transit_seconds"] >= 3, "scans seconds apart"


@pytest.mark.django_db
def test_fraud_screening_and_labels_take_their_switches_time(monkeypatch):
    from orders.fraud.services import fraud_screen
    from shipping import carrier

    waited = []
    monkeypatch.setattr(faults, "simulated_delay", waited.append)
    fraud_screen(event_id=str(uuid.uuid4()), order_id="o1", payload={"email": "a@example.com", "amount": "1"}, handler="h")
    carrier.create_label(key="label-o1", address={})

    assert waited == ["fraud_latency_ms", "carrier_label_ms"]
