"""``burst``: quiet, then 30 s at 5x the sustained completion rate, then quiet until drained.

Checkout p99 before, during and after; every queue's depth and oldest age each second
(``shop/pipeline/backlog.py``, the operations page's source); the drain; and the critical
stages' latency in the burst against their idle latency, beside the low-priority stages'.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from bench import journeys
from bench.load import Client, LoadResult
from bench.scenarios.base import Figure, Result, Run, audit
from bench.workload import order_body, wait_terminal

QUIET_RATE = 2.0
DEFAULT_SUSTAINED = 5.0  # orders/s, when no saturate run of the same invocation measured it


def window(load: LoadResult, start: float, end: float) -> dict[str, Any]:
    """p50/p99 of the requests intended between ``start`` and ``end`` seconds into the load."""
    values = sorted(latency for offset, latency, _ in load.samples if start <= offset < end)
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None}
    return {
        "n": len(values),
        "p50_ms": round(values[len(values) // 2], 1),
        "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 1),
        "errors": sum(1 for offset, _, outcome in load.samples if start <= offset < end and outcome != "ok"),
    }


def run(ctx: Run) -> Result:
    sustained = (ctx.found.get("saturate") or {}).get("overall") or DEFAULT_SUSTAINED
    burst_rate = round(5 * sustained, 1)
    quiet, burst, after = ctx.seconds(20, 3), ctx.seconds(30, 4), ctx.seconds(40, 4)
    phases = [(QUIET_RATE, quiet), (burst_rate, burst), (QUIET_RATE, after)]
    result = Result("burst", settings={"sustained_rate": sustained, "burst_rate": burst_rate, "phases": phases})
    with ctx.shop("burst") as shop:
        client = Client(shop.url, "/api/orders", order_body(shop.skus))
        warm = [order_id for order_id, _ in client.warm_up(ctx.seconds(3, 1)).created]  # every web thread's first request
        sampler = shop.sampler()
        sampler.start()
        t0 = dt.datetime.now(dt.UTC)
        load = client.phases(phases, "burst")
        ids = [order_id for order_id, _ in load.created]
        drain = wait_terminal(warm + ids, ctx.seconds(900, 90))
        finished = time.time()
        samples = sampler.stop()
        marks = {"burst starts": load.started_at + quiet, "burst ends": load.started_at + quiet + burst}
        before, during, post = window(load, 0, quiet), window(load, quiet, quiet + burst), window(load, quiet + burst, 1e9)
        idle = journeys.stage_report(ids, until=t0 + dt.timedelta(seconds=quiet))
        busy = journeys.stage_report(ids, since=t0 + dt.timedelta(seconds=quiet), until=t0 + dt.timedelta(seconds=quiet + burst))
        how = f"open loop: {QUIET_RATE:g}/s for {quiet:g} s, {burst_rate:g}/s for {burst:g} s, {QUIET_RATE:g}/s for {after:g} s"
        result.add(
            Figure("checkout p99 before", before["p99_ms"], "ms", how),
            Figure("checkout p99 during", during["p99_ms"], "ms", how, ceiling_value=before["p99_ms"], ceiling_label="idle p99"),
            Figure("checkout p99 after", post["p99_ms"], "ms", how, ceiling_value=before["p99_ms"], ceiling_label="idle p99"),
            Figure(
                "drain after the burst",
                round(finished - marks["burst ends"], 1) if drain is not None else None,
                "s",
                "the burst's end to every order of the run terminal",
            ),
            Figure(
                "queues empty after the burst",
                _drain(samples, marks["burst ends"]),
                "s",
                "the burst's end to the first sample with every queue and the outbox empty",
            ),
        )
        for name in idle:
            kind = "critical" if idle[name]["critical"] else "low priority"
            result.add(
                Figure(
                    f"{kind}: {name} p95 in the burst",
                    busy[name]["p95_ms"],
                    "ms",
                    "inputs during the burst",
                    ceiling_value=idle[name]["p95_ms"],
                    ceiling_label="idle p95",
                ),
            )
        result.timeline(
            ctx.out_dir / "burst.png",
            samples,
            load,
            f"Burst: {burst_rate:g} orders/s for {burst:g} s",
            marks={k: v - samples["started_at"] for k, v in marks.items()},
        )
        result.data = {
            "windows": {"before": before, "during": during, "after": post},
            "idle_stages": idle,
            "burst_stages": busy,
            "samples": samples,
            "marks": marks,
            "all_terminal": drain is not None,
        }
        result.audit = audit(warm + ids, drained=drain is not None)
    return result


def _drain(samples: dict[str, Any], burst_end: float) -> float | None:
    """Seconds from the burst's end to the first sample with nothing waiting anywhere."""
    started = samples.get("started_at", 0.0)
    for row in samples["series"]:
        at = started + row["t"]
        waiting = sum(q.get("depth") or 0 for q in row["queues"].values()) + (row["outbox"].get("waiting") or 0)
        if at > burst_end and waiting == 0:
            return round(at - burst_end, 1)
    return None
