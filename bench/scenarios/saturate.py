"""``saturate``: N orders as fast as the API takes them; completed orders/s and the drain."""

from __future__ import annotations

from typing import Any

from bench import journeys
from bench.load import Client
from bench.scenarios.base import Figure, Result, Run, audit
from bench.workload import order_body, wait_terminal
from shop.pipeline.events import subscribers

CONNECTIONS = 8


def messages_per_order(order_ids: list[str]) -> float:
    """Broker messages the orders cost: one per subscriber of each event they wrote (the map's fan-out)."""
    total = sum(len(subscribers(kind)) for events in journeys.timelines(order_ids).values() for kind, _ in events)
    return total / len(order_ids) if order_ids else 0.0


def completion_times(order_ids: list[str]) -> list[float]:
    """Unix times of each order's terminal event, sorted."""
    times = []
    for events in journeys.timelines(order_ids).values():
        terminal = next((at for kind, at in events if kind in journeys.TERMINAL_EVENTS), None)
        if terminal is not None:
            times.append(terminal.timestamp())
    return sorted(times)


def throughput(created: list[tuple[str, float]], done: list[float]) -> dict[str, Any]:
    """Overall completed/s (first 201 to last terminal: the sustained rate the burst and the soak
    are sized from), the 10-90% slope of the completions, and the drain."""
    if len(done) < 10 or not created:
        return {"overall": None, "steady": None, "drain_s": None}
    first = min(t for _, t in created)
    last_checkout = max(t for _, t in created)
    n = len(done)
    t10, t90 = done[int(n * 0.1)], done[int(n * 0.9) - 1]
    return {
        "overall": round(n / (done[-1] - first), 2),
        "steady": round((int(n * 0.9) - int(n * 0.1)) / (t90 - t10), 2) if t90 > t10 else None,
        "drain_s": round(done[-1] - last_checkout, 1),
        "checkout_s": round(last_checkout - first, 1),
    }


def run(ctx: Run) -> Result:
    orders = ctx.count(2000, 60)
    result = Result("saturate", settings={"orders": orders, "connections": CONNECTIONS})
    with ctx.shop("saturate") as shop:
        load = Client(shop.url, "/api/orders", order_body(shop.skus)).closed_loop(CONNECTIONS, 600, count=orders)
        ids = [order_id for order_id, _ in load.created]
        drain = wait_terminal(ids, ctx.seconds(1500, 90))
        rates = throughput(load.created, completion_times(ids))
        per_order = messages_per_order(ids)
        ctx.found["saturate"] = {**rates, "messages_per_order": per_order}
        pipeline_ceiling(ctx)
        how = f"{len(ids)} orders placed by {CONNECTIONS} connections as fast as answered; terminal events' commit times"
        result.add(
            Figure(
                "completed orders/s, overall",
                rates["overall"],
                "orders/s",
                how,
                ceiling="pipeline_orders_per_s",
                higher_is_better=True,
            ),
            Figure(
                "completed orders/s, 10-90% slope",
                rates["steady"],
                "orders/s",
                "every queue is FIFO, so a batch moves through the stages together and its orders "
                "finish in a wave: the slope overstates the sustained rate, which is the overall figure",
                higher_is_better=True,
            ),
            Figure("drain after the last checkout", rates["drain_s"], "s", "last 201 to the last terminal event"),
            Figure(
                "checkout answered",
                load.summary()["answered_per_s"],
                "req/s",
                "during the placing",
                ceiling="view_insert_closed_loop",
                higher_is_better=True,
            ),
            Figure("messages per order", round(per_order, 1), "messages", "one per subscriber of every event an order wrote"),
        )
        result.data = {
            "throughput": rates,
            "checkout": load.summary(),
            "messages_per_order": per_order,
            "all_terminal": drain is not None,
        }
        result.audit = audit(ids, drained=drain is not None)
    return result


def pipeline_ceiling(ctx: Run) -> None:
    """min(confirmed publish, Celery no-op) / messages per order: what the stack allows in completed orders/s."""
    per_order = (ctx.found.get("saturate") or {}).get("messages_per_order")
    publish, noop = ctx.ceilings.get("confirmed_publish"), ctx.ceilings.get("celery_noop")
    if not (per_order and publish and noop):
        return
    ctx.ceilings["pipeline_orders_per_s"] = {
        "value": round(min(publish["value"], noop["value"]) / per_order, 1),
        "unit": "orders/s",
        "how": f"min(confirmed publish, Celery no-op) / {per_order:.1f} messages per order",
    }
