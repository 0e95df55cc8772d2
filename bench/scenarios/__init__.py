"""The bench's scenarios, by the name ``manage.py bench`` takes; ``all`` runs them in this order.

The ceilings come first, so every later figure is printed beside the limit measured in the
same run; saturate comes before burst and soak, which size their load from its rate. Each
scenario's module is imported when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from bench.scenarios.base import Figure, Result, Run

_WHERE = {
    "ceiling": "ceiling:run",
    "tasks": "tasks:run",
    "checkout": "checkout:run",
    "end-to-end": "end_to_end:run",
    "saturate": "saturate:run",
    "relay": "relay:run",
    "burst": "burst:run",
    "outage": "faults:outage",
    "kill": "faults:kill",
    "sync": "sync:run",
    "pages": "pages:run",
    "soak": "soak:run",
}
SCENARIOS: tuple[str, ...] = tuple(_WHERE)


def scenario(name: str) -> Callable[[Run], Result]:
    module, function = _WHERE[name].split(":")
    return getattr(importlib.import_module(f"bench.scenarios.{module}"), function)


__all__ = ["SCENARIOS", "Figure", "Result", "Run", "scenario"]
