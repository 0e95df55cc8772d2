"""``checkout``: open-loop POST /api/orders at fixed rates, then a closed-loop maximum, with the pipeline running."""

from __future__ import annotations

from bench.load import Client
from bench.scenarios.base import Figure, Result, Run, audit
from bench.workload import order_body, wait_terminal

RATES = (20, 50, 100, 200, 400)
QUICK_RATES = (20, 50)
CLOSED_LOOP_CONNECTIONS = 8
HOW = "open loop, latency from each request's intended send time (no coordinated omission), HDR histogram"


def run(ctx: Run) -> Result:
    result = Result("checkout")
    step = ctx.seconds(10, 1)
    with ctx.shop("checkout") as shop:
        client = Client(shop.url, "/api/orders", order_body(shop.skus))
        steps, created = [], list(client.warm_up(ctx.seconds(3, 1)).created)
        for rate in QUICK_RATES if ctx.quick else RATES:
            load = client.open_loop(rate, step)
            steps.append(load.summary())
            created += load.created
            _rate_figures(result, load.summary(), rate)
        closed = client.closed_loop(CLOSED_LOOP_CONNECTIONS, step)
        created += closed.created
        summary = closed.summary()
        steps.append(summary)
        result.add(
            Figure(
                f"closed loop x{CLOSED_LOOP_CONNECTIONS}: answered",
                summary["answered_per_s"],
                "req/s",
                f"{CLOSED_LOOP_CONNECTIONS} connections, each sending when answered, {step:g} s",
                ceiling="view_insert_closed_loop",
                higher_is_better=True,
            ),
            Figure(f"closed loop x{CLOSED_LOOP_CONNECTIONS}: p99", summary["p99_ms"], "ms", "latency from send"),
        )
        ids = [order_id for order_id, _ in created]
        drain = wait_terminal(ids, ctx.seconds(180, 60))
        result.data = {"steps": steps, "step_seconds": step, "orders": len(ids), "drained_after_s": drain}
        result.audit = audit(ids, drained=drain is not None)
    return result


def _rate_figures(result: Result, s: dict, rate: int) -> None:
    errors = sum(s["errors"].values())
    ceiling = f"view_insert_p99_at_{rate}"
    result.add(
        Figure(f"{rate}/s: p50", s["p50_ms"], "ms", HOW, ceiling=f"view_insert_p50_at_{rate}"),
        Figure(f"{rate}/s: p99", s["p99_ms"], "ms", HOW, ceiling=ceiling),
        Figure(f"{rate}/s: max", s["max_ms"], "ms", HOW),
        Figure(f"{rate}/s: answered", s["answered_per_s"], "req/s", "201s per second of the step", higher_is_better=True),
        Figure(f"{rate}/s: errors", errors, "requests", f"by kind: {s['errors'] or 'none'}"),
    )
