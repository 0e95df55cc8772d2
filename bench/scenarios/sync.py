"""``sync``: the synchronous foil beside the asynchronous checkout, same load, same 300 ms gateway.

The foil (``SYNC_CHECKOUT_PATH``) authorises the card, screens for fraud and reserves stock
inside the request, with the same services the workers run; the asynchronous checkout
writes the order and its event and answers. Each gets a fresh shop and the same open-loop
rates; "falls over" is the first rate with more than 1% errors or a p99 over 2 s.
"""

from __future__ import annotations

from typing import Any

from bench import charts
from bench.load import Client
from bench.runtime import Outside
from bench.scenarios.base import Figure, Result, Run, audit
from bench.workload import order_body, wait_terminal

SYNC_CHECKOUT_PATH = "/api/checkout/sync"
ASYNC_CHECKOUT_PATH = "/api/orders"
GATEWAY_MS = 300.0
RATES = (5, 10, 20, 40, 80)
QUICK_RATES = (5,)
FALLS_OVER_P99_MS = 2000.0


def falls_over_at(steps: list[dict[str, Any]]) -> float | None:
    for step in steps:
        errors = sum(step["errors"].values())
        if errors > 0.01 * max(1, step["sent"]) or (step["p99_ms"] or 0) > FALLS_OVER_P99_MS:
            return step["offered_rate"]
    return None


def measure(ctx: Run, path: str, label: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    step = ctx.seconds(10, 2)
    with ctx.shop(f"sync_{label}", Outside(gateway_ms=GATEWAY_MS)) as shop:
        client = Client(shop.url, path, order_body(shop.skus))
        ids = [order_id for order_id, _ in client.warm_up(ctx.seconds(3, 1)).created]
        steps = []
        for rate in QUICK_RATES if ctx.quick else RATES:
            load = client.open_loop(rate, step, f"{label} {rate}/s")
            steps.append(load.summary())
            ids += [order_id for order_id, _ in load.created]
        drain = wait_terminal(ids, ctx.seconds(300, 60))
        return steps, audit(ids, drained=drain is not None)


def run(ctx: Run) -> Result:
    result = Result("sync", settings={"gateway_ms": GATEWAY_MS, "rates": list(QUICK_RATES if ctx.quick else RATES)})
    async_steps, async_audit = measure(ctx, ASYNC_CHECKOUT_PATH, "async")
    sync_steps, sync_audit = measure(ctx, SYNC_CHECKOUT_PATH, "sync")
    how = f"open loop, {GATEWAY_MS:g} ms gateway, a fresh shop each, latency from the intended send time"
    for a, s in zip(async_steps, sync_steps, strict=True):
        rate = a["offered_rate"]
        speedup = round(s["p99_ms"] / a["p99_ms"], 1) if s["p99_ms"] and a["p99_ms"] else None
        result.add(
            Figure(f"{rate:g}/s: synchronous p99", s["p99_ms"], "ms", how),
            Figure(
                f"{rate:g}/s: asynchronous p99",
                a["p99_ms"],
                "ms",
                how,
                ceiling_value=s["p99_ms"],
                ceiling_label="synchronous p99",
            ),
            Figure(
                f"{rate:g}/s: asynchronous faster by", speedup, "x", "synchronous p99 / asynchronous p99", higher_is_better=True
            ),
            Figure(f"{rate:g}/s: synchronous errors", sum(s["errors"].values()), "requests", f"{s['errors'] or 'none'}"),
        )
    result.add(
        Figure(
            "synchronous checkout falls over at",
            falls_over_at(sync_steps),
            "orders/s",
            f">1% errors or p99 > {FALLS_OVER_P99_MS:g} ms",
        ),
        Figure("asynchronous checkout falls over at", falls_over_at(async_steps), "orders/s", "the same rule"),
    )
    groups = {
        f"{a['offered_rate']:g}/s": {
            "async p50": a["p50_ms"],
            "async p99": a["p99_ms"],
            "sync p50": s["p50_ms"],
            "sync p99": s["p99_ms"],
        }
        for a, s in zip(async_steps, sync_steps, strict=True)
    }
    path = ctx.out_dir / "sync-vs-async.png"
    charts.bars_chart(groups, path, f"Checkout latency, synchronous vs asynchronous ({GATEWAY_MS:g} ms gateway)", "ms", log=True)
    result.charts.append(str(path))
    result.data = {"async": async_steps, "sync": sync_steps}
    result.audit = {
        "clean": async_audit["clean"] and sync_audit["clean"],
        "violations": async_audit["violations"] + sync_audit["violations"],
        "stats": {"async": async_audit["stats"], "sync": sync_audit["stats"]},
    }
    return result
