"""``end-to-end``: from the 201 to the terminal status at low load, and each stage's latency from the timeline."""

from __future__ import annotations

from bench import journeys
from bench.load import Client
from bench.runtime import Outside
from bench.scenarios.base import Figure, Result, Run, audit
from bench.workload import order_body, wait_terminal

RATE = 2.0  # orders/s: low load, so the figures are the pipeline's own latency, not queueing
OUTSIDE = Outside(gateway_ms=50, carrier_transit_s=0, carrier_delivery_s=0)
# The outside calls on the critical path: authorisation and capture (the carrier answers at once here).
OUTSIDE_CRITICAL_MS = 2 * OUTSIDE.gateway_ms


def run(ctx: Run) -> Result:
    result = Result("end-to-end", settings={"rate": RATE, "gateway_ms": OUTSIDE.gateway_ms, "carrier_s": 0})
    with ctx.shop("end_to_end", OUTSIDE) as shop:
        load = Client(shop.url, "/api/orders", order_body(shop.skus)).open_loop(RATE, ctx.seconds(30, 4))
        ids = [order_id for order_id, _ in load.created]
        drain = wait_terminal(ids, ctx.seconds(120, 60))
        e2e = journeys.end_to_end(load.created)
        stages = journeys.stage_report(ids)
        relay = journeys.relay_leg(ids)
        slowest = journeys.slowest(stages)
        how = f"{RATE:g} orders/s for {load.duration:.0f} s; the 201 (client clock) to the terminal event's commit"
        result.add(
            Figure(
                "end to end: p50",
                e2e["p50_ms"],
                "ms",
                how,
                ceiling_value=OUTSIDE_CRITICAL_MS,
                ceiling_label=f"outside latencies on the critical path ({OUTSIDE_CRITICAL_MS:g} ms)",
            ),
            Figure("end to end: p99", e2e["p99_ms"], "ms", how),
            Figure("checkout p50 at 2/s", load.summary()["p50_ms"], "ms", "open loop", ceiling="view_insert_p50_at_20"),
        )
        for name, s in stages.items():
            result.add(Figure(f"stage {name}: p50", s["p50_ms"], "ms", f"queue {s['queue']}; consumed event to emitted event"))
        leg = "every event of the orders: its commit to its confirmed publish, the relay's share of each stage"
        result.add(Figure("relay leg: p50", relay["p50_ms"], "ms", leg), Figure("relay leg: p99", relay["p99_ms"], "ms", leg))
        result.data = {
            "end_to_end": e2e,
            "stages": stages,
            "relay_leg": relay,
            "slowest_stage": slowest,
            "checkout": load.summary(),
        }
        result.audit = audit(ids, drained=drain is not None)
    return result
