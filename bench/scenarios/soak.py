"""``soak``: many orders at a steady rate; every process's RSS and PSS every 10 s.

Memory that grows with the orders served (a history kept forever, a cache with no bound)
shows here and nowhere else: the figure is the end against the idle start, per role.
"""

from __future__ import annotations

from typing import Any

from bench.load import Client
from bench.scenarios.base import Figure, Result, Run, audit
from bench.workload import order_body, wait_terminal

ORDERS = 10_000
DEFAULT_RATE = 5.0


def totals(memory: list[dict[str, Any]], key: str) -> list[float]:
    return [sum(role[key] or 0 for role in row["roles"].values()) for row in memory]


def soak_rate(ctx: Run) -> float:
    """``--soak-rate``, else 0.8x the overall completion rate saturate measured in this run (a
    soak above what the pipeline sustains measures a growing backlog, not the processes), else 5."""
    sustained = (ctx.found.get("saturate") or {}).get("overall")
    return ctx.soak_rate or (round(min(0.8 * sustained, 50.0), 1) if sustained else DEFAULT_RATE)


def run(ctx: Run, orders: int | None = None, rate: float | None = None) -> Result:
    rate = rate or soak_rate(ctx)
    orders = orders or ctx.soak_orders or ctx.count(ORDERS, 40)
    result = Result("soak", settings={"orders": orders, "rate": rate})
    with ctx.shop("soak") as shop:
        sampler = shop.sampler(memory_interval=ctx.seconds(10, 1))
        sampler.start()
        load = Client(shop.url, "/api/orders", order_body(shop.skus)).open_loop(rate, orders / rate, "soak")
        ids = [order_id for order_id, _ in load.created]
        drain = wait_terminal(ids, ctx.seconds(900, 60))
        samples = sampler.stop()
        memory = samples["memory"]
        how = f"{len(ids)} orders at {rate:g}/s; psutil PSS summed over every process of the shop"
        if memory:
            pss = totals(memory, "pss_mb")
            result.add(
                Figure(
                    "PSS of the whole shop at the end",
                    round(pss[-1], 1),
                    "MB",
                    how,
                    ceiling_value=round(pss[0], 1),
                    ceiling_label="PSS idle, at the start",
                )
            )
            first, last = memory[0]["roles"], memory[-1]["roles"]
            for role in sorted(set(first) & set(last)):
                result.add(
                    Figure(
                        f"RSS {role} at the end",
                        last[role]["rss_mb"],
                        "MB",
                        "main process and its children",
                        ceiling_value=first[role]["rss_mb"],
                        ceiling_label="at the start",
                    )
                )
        result.add(Figure("checkout p99", load.summary()["p99_ms"], "ms", how))
        result.timeline(ctx.out_dir / "soak.png", samples, load, f"Soak: {len(ids)} orders at {rate:g}/s")
        result.data = {"checkout": load.summary(), "samples": samples, "all_terminal": drain is not None}
        result.audit = audit(ids, drained=drain is not None)
    return result
