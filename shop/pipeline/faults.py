"""Runtime fault switches: the knobs that make the simulated outside world misbehave.

Each switch has an environment default (``FAULT_<NAME>``, for example
``FAULT_GATEWAY_LATENCY_MS=200``) that staff can override at run time in the admin
(``FaultSetting`` rows). Values are cached for a second so that a busy worker
does not query the table on every call.

Switches act only where ``settings.FAULTS_ENABLED`` is on (the demo, the chaos
runner and the tests set it): a production configuration reads neither the
variables nor the rows, and its admin refuses to change them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time

SWITCHES: dict[str, str] = {
    "gateway_latency_ms": "Milliseconds the payment gateway takes per call",
    "gateway_failure_rate": "Share of gateway calls that fail with 503 before doing anything (0..1)",
    "gateway_timeout_rate": "Share of gateway calls that time out after doing the work (0..1)",
    "fraud_latency_ms": "Milliseconds fraud screening takes per order (a scoring service's answer)",
    "carrier_label_ms": "Milliseconds the carrier takes to sell a label",
    "carrier_transit_seconds": "Seconds from label to in transit",
    "carrier_delivery_seconds": "Seconds from label to delivered",
    "fraud_review_rate": "Share of orders sent to manual fraud review (0..1)",
    "crash_order": "Public id of an order whose handlers crash their process once (os._exit)",
    "poison_order": "Public id of an order whose handlers crash their process every time",
    "duplicate_publish": "1 to publish every event twice",
    "relay_crash_after_publish": "1 to SIGKILL the relay between publishing a batch and marking it",
}

DEFAULTS: dict[str, str] = {
    "gateway_latency_ms": "50",
    "fraud_latency_ms": "0",
    "carrier_label_ms": "0",
    "carrier_transit_seconds": "3",
    "carrier_delivery_seconds": "6",
}

_log = logging.getLogger("shop.faults")
_cache: tuple[float, dict[str, str]] = (0.0, {})
CACHE_SECONDS = 1.0


def _overrides() -> dict[str, str]:
    global _cache
    now = time.monotonic()
    if now - _cache[0] > CACHE_SECONDS:
        from shop.pipeline.models import FaultSetting

        try:
            values = dict(FaultSetting.objects.values_list("name", "value"))
        except Exception:  # no table yet (before migrate), or the database is away
            values = _cache[1]
        _cache = (now, values)
    return _cache[1]


def clear_cache() -> None:
    global _cache
    _cache = (0.0, {})


def active() -> bool:
    """Whether this configuration lets fault switches act at all."""
    from django.conf import settings

    return bool(getattr(settings, "FAULTS_ENABLED", False))


def get(name: str) -> str:
    if name not in SWITCHES:
        raise KeyError(name)
    if not active():
        return DEFAULTS.get(name, "")
    value = _overrides().get(name)
    if value is None:
        value = os.environ.get(f"FAULT_{name.upper()}", DEFAULTS.get(name, ""))
    return value


def get_float(name: str) -> float:
    try:
        return float(get(name) or 0)
    except ValueError:
        return 0.0


def simulated_delay(name: str) -> None:
    """Sleep for a latency switch's milliseconds, give or take half: the outside world's pace.

    The same shape for every simulated service (gateway, fraud scoring, carrier labels), so the
    demo can slow them to a pace a viewer can follow while the tests keep them near zero.
    """
    latency = get_float(name) / 1000
    if latency > 0:
        time.sleep(latency * random.uniform(0.5, 1.5))


def enabled(name: str) -> bool:
    return get(name).strip().lower() in {"1", "true", "yes", "on"}


def set_switch(name: str, value: str) -> None:
    """Staff and tests: override a switch for every process (through the database)."""
    from shop.pipeline.models import FaultSetting

    if name not in SWITCHES:
        raise KeyError(name)
    FaultSetting.objects.update_or_create(name=name, defaults={"value": value})
    clear_cache()


def maybe_crash(order_id: str, where: str) -> None:
    """The crash switches: kill this process (as the OOM killer would) while it handles the order.

    ``crash_order`` crashes once per handler (the redelivered message then
    succeeds); ``poison_order`` crashes every time, until the broker's delivery
    limit dead-letters the message.
    """
    if not order_id:
        return
    if get("poison_order") == order_id:
        _log.error("fault: poison order %s crashes %s", order_id, where)
        os._exit(9)
    if get("crash_order") == order_id:
        from django.db import DatabaseError

        from shop.pipeline.models import FaultSetting

        marker = "crashed:" + hashlib.sha1(f"{order_id}:{where}".encode()).hexdigest()[:24]
        try:
            _, first = FaultSetting.objects.get_or_create(name=marker, defaults={"value": where[:200]})
        except DatabaseError:  # the switch must never be a failure of its own: no crash this time
            return
        if first:
            _log.error("fault: order %s crashes %s once", order_id, where)
            os._exit(9)


def describe() -> list[dict[str, str]]:
    """Every known switch with its meaning, its default (the ``FAULT_<NAME>`` variable, else the
    built-in one; empty means off) and the value in force now, for the admin's list."""
    overrides = _overrides() if active() else {}
    rows = []
    for name, meaning in SWITCHES.items():
        default = os.environ.get(f"FAULT_{name.upper()}", DEFAULTS.get(name, "")) if active() else DEFAULTS.get(name, "")
        rows.append({"name": name, "meaning": meaning, "default": default, "current": get(name), "overridden": name in overrides})
    return rows
