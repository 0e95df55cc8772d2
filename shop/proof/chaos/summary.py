"""What a chaos run reports: orders, faults, restarts, violations; as text and as JSON."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Summary:
    seed: int
    orders_requested: int
    rate: float
    broker: str
    started: float = field(default_factory=time.time)
    placed: list[str] = field(default_factory=list)
    rejected: int = 0
    unconfirmed: int = 0
    client_retries: int = 0
    faults: Counter = field(default_factory=Counter)
    fault_log: list[str] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    audit_stats: dict[str, int] = field(default_factory=dict)
    quiesce_seconds: float = 0.0
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        terminal = self.statuses.get("delivered", 0) + self.statuses.get("cancelled", 0)
        return {
            "ok": self.ok,
            "seed": self.seed,
            "broker": self.broker,
            "orders": {
                "requested": self.orders_requested,
                "confirmed": len(self.placed),
                "rejected_at_checkout": self.rejected,
                "unconfirmed": self.unconfirmed,
                "client_retries": self.client_retries,
                "terminal": terminal,
                "by_status": dict(self.statuses),
            },
            "rate_per_second": self.rate,
            "faults": dict(self.faults),
            "fault_log": self.fault_log,
            "restarts": self.restarts,
            "audit": self.audit_stats,
            "violations": self.violations,
            "quiesce_seconds": round(self.quiesce_seconds, 1),
            "duration_seconds": round(self.duration_seconds, 1),
        }

    def text(self) -> str:
        d = self.as_dict()
        o = d["orders"]
        lines = [
            f"chaos run (seed {self.seed}, broker {self.broker}): {'OK' if self.ok else 'FAILED'}",
            f"  orders: {o['requested']} requested, {o['confirmed']} confirmed, "
            f"{o['rejected_at_checkout']} rejected at checkout, {o['unconfirmed']} unconfirmed, "
            f"{o['terminal']} terminal {o['by_status']}",
            f"  faults: {sum(self.faults.values())} injected {dict(self.faults)}",
            f"  restarts by the supervisor: {self.restarts}",
            f"  quiesced in {d['quiesce_seconds']} s; whole run {d['duration_seconds']} s",
            f"  violations: {len(self.violations)}",
            *(f"    {v}" for v in self.violations),
        ]
        return "\n".join(lines)
