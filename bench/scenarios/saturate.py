"""``saturate``: N orders as fast as the API takes them; completed orders/s and the drain."""

from __future__ import annotations

import os
from typing import Any

from bench import journeys
from bench.load import Client
from bench.procstat import CLK_TCK
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


def busy_seconds() -> float:
    """CPU seconds the machine's cores have been busy since boot (``/proc/stat``: user, nice,
    system, irq and softirq; not idle, I/O wait or time the hypervisor gave to others)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / CLK_TCK


def cpu_per_order(series: list[dict[str, Any]], busy_s: float, orders: int, interval: float) -> dict[str, float]:
    """Milliseconds of CPU per completed order: each of the shop's process roles (the sampler's
    cores, second by second), the whole machine, and the rest of it (PostgreSQL, RabbitMQ and
    anything else running), so that a figure of orders/s comes with what each order cost."""
    spent: dict[str, float] = {}
    previous = 0.0
    for sample in series:
        step, previous = (sample["t"] - previous) or interval, sample["t"]
        for role, cores in (sample.get("cpu") or {}).items():
            spent[role] = spent.get(role, 0.0) + cores * step
    if not orders:
        return {}
    per_order = {role: round(1000 * seconds / orders, 1) for role, seconds in sorted(spent.items(), key=lambda kv: -kv[1])}
    per_order["machine"] = round(1000 * busy_s / orders, 1)
    per_order["rest (PostgreSQL, RabbitMQ, other)"] = round(per_order["machine"] - sum(spent.values()) * 1000 / orders, 1)
    return per_order


def run(ctx: Run) -> Result:
    orders = ctx.count(2000, 60)
    result = Result("saturate", settings={"orders": orders, "connections": CONNECTIONS})
    with ctx.shop("saturate") as shop:
        sampler, busy = shop.sampler().start(), busy_seconds()
        load = Client(shop.url, "/api/orders", order_body(shop.skus)).closed_loop(CONNECTIONS, 600, count=orders)
        ids = [order_id for order_id, _ in load.created]
        drain = wait_terminal(ids, ctx.seconds(1500, 90))
        busy, samples = busy_seconds() - busy, sampler.stop()
        rates = throughput(load.created, completion_times(ids))
        cpu = cpu_per_order(samples["series"], busy, len(ids), samples["interval_s"])
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
            Figure(
                "machine's busy CPU per completed order",
                cpu.get("machine"),
                "ms",
                "/proc/stat over the run, all cores, divided by the orders; by process role in the data",
                ceiling_value=goal_cpu_per_order(ctx),
                ceiling_label="the CPU per order at which the machine's cores reach half the pipeline ceiling (ms)",
            ),
        )
        for role, ms in cpu.items():
            print(f"  CPU per order: {role:<40} {ms:>7} ms")
        result.data = {
            "throughput": rates,
            "checkout": load.summary(),
            "messages_per_order": per_order,
            "all_terminal": drain is not None,
            "cpu_ms_per_order": cpu,
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


def goal_cpu_per_order(ctx: Run) -> float | None:
    """The busy CPU per order (ms) at which all the cores sustain half the pipeline ceiling."""
    ceiling = ctx.ceilings.get("pipeline_orders_per_s")
    if not ceiling or not ceiling.get("value"):
        return None
    return round(1000 * (os.cpu_count() or 1) / (0.5 * ceiling["value"]), 1)
