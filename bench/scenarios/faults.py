"""``outage`` and ``kill``: a steady load while the gateway fails for a minute, or a worker is SIGKILLed.

What a failure costs is measured in orders: how many completed, how many were
cancelled, how long the backlog took to clear, and whether the checker is clean.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.load import Client
from bench.runtime import BenchShop
from bench.scenarios.base import Figure, Result, Run, audit
from bench.workload import order_body, wait_terminal
from shop.local.processes import worker_serving

RATE = 4.0  # orders/s: well under what the pipeline sustains, so the fault is what shows


def statuses(order_ids: list[str]) -> Counter:
    from orders.models import Order

    found: Counter = Counter()
    for start in range(0, len(order_ids), 5000):
        found.update(Order.objects.filter(public_id__in=order_ids[start : start + 5000]).values_list("status", flat=True))
    return found


def steady_with(
    ctx: Run, scenario: str, at: float, fault: Callable[[BenchShop], str], heal: Callable[[BenchShop], None] | None, lasts: float
) -> Result:
    """Load at ``RATE`` for the whole run; ``fault`` at ``at`` seconds, ``heal`` ``lasts`` seconds later."""
    duration = at + lasts + ctx.seconds(30, 4)
    result = Result(scenario, settings={"rate": RATE, "fault_at_s": at, "fault_lasts_s": lasts, "duration_s": duration})
    with ctx.shop(scenario) as shop:
        sampler = shop.sampler()
        sampler.start()
        detail: dict[str, Any] = {}

        def nemesis() -> None:
            if stop.wait(at):
                return
            sampler.mark("fault")
            detail["fault"] = fault(shop)
            if heal is not None and not stop.wait(lasts):
                heal(shop)
                sampler.mark("healed")

        stop = threading.Event()
        thread = threading.Thread(target=nemesis, daemon=True)
        thread.start()
        load = Client(shop.url, "/api/orders", order_body(shop.skus)).open_loop(RATE, duration, scenario)
        thread.join()
        ids = [order_id for order_id, _ in load.created]
        drain = wait_terminal(ids, ctx.seconds(600, 120))
        samples = sampler.stop()
        counts = statuses(ids)
        summary = load.summary()
        how = f"{RATE:g} orders/s for {duration:g} s; {detail.get('fault', 'the fault')} at {at:g} s"
        result.add(
            Figure("orders confirmed", summary["ok"], "orders", how),
            Figure(
                "orders delivered",
                counts.get("delivered", 0),
                "orders",
                how,
                ceiling_value=summary["ok"] or None,
                ceiling_label="orders confirmed",
                higher_is_better=True,
            ),
            Figure("orders cancelled", counts.get("cancelled", 0), "orders", "each with its compensations"),
            Figure("checkout p99", summary["p99_ms"], "ms", how),
            Figure("checkout errors", sum(summary["errors"].values()), "requests", f"{summary['errors'] or 'none'}"),
            Figure("all terminal after", drain, "s", "from the end of the load"),
        )
        result.timeline(ctx.out_dir / f"{scenario}.png", samples, load, f"{scenario}: {how}")
        result.data = {"statuses": dict(counts), "checkout": summary, "samples": samples, "fault": detail}
        result.audit = audit(ids, drained=drain is not None)
    return result


def outage(ctx: Run) -> Result:
    from shop.pipeline import faults

    def fail(shop: BenchShop) -> str:
        faults.set_switch("gateway_failure_rate", "1")
        return "every gateway call answers 503"

    def heal(shop: BenchShop) -> None:
        faults.set_switch("gateway_failure_rate", "0")

    return steady_with(ctx, "outage", ctx.seconds(20, 3), fail, heal, ctx.seconds(60, 5))


def kill(ctx: Run) -> Result:
    def sigkill(shop: BenchShop) -> str:
        assert shop.sup is not None
        os.kill(shop.sup.pid(worker_serving("payments", shop.commands)), signal.SIGKILL)
        return "SIGKILL to the payments worker's main process"

    return steady_with(ctx, "kill", ctx.seconds(20, 3), sigkill, None, ctx.seconds(10, 2))
