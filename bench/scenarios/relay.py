"""``relay``: how fast the outbox relay drains a backlog, beside the confirmed-publish ceilings.

The shop's database and vhost with no worker: the outbox is filled with ``order.placed`` rows
(one message per subscriber in the pipeline map), then 1 and then 2 of the demo's own relay
processes drain it; messages per second are counted between the first and the last
``published_at`` (every row is marked only once the broker confirmed all its copies). The
queues fill, and are purged between the steps.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from bench import procstat
from bench.processes import log_tail, running
from bench.scenarios.base import Figure, Result, Run
from shop.local.processes import argv, commands

RELAY_COUNTS = (1, 2)
PAYLOAD = {
    "lines": [{"sku": f"BENCH-{i:03d}", "quantity": 1, "price": "12.50"} for i in range(3)],
    "amount": "37.50",
    "email": "bench@example.com",
    "address": {"line1": "1 Bench Street", "city": "Testville", "postcode": "12345"},
}
GOAL_RATIO = 3.0  # the speed goal: a relay drains at 3x the one-by-one confirmed publish


def fill(events: int) -> None:
    """``events`` unpublished ``order.placed`` rows, as checkouts would have written them."""
    from shop.pipeline.models import OutboxEvent

    OutboxEvent.objects.all().delete()
    rows = [
        OutboxEvent(kind="order.placed", order_id=f"ORD-R{i:06d}", payload=PAYLOAD, request_id=f"req-{i}") for i in range(events)
    ]
    OutboxEvent.objects.bulk_create(rows, batch_size=1000)


def drain(relays: int, events: int, env: dict[str, str], log_dir: Any, timeout: float) -> dict[str, float]:
    """Start ``relays`` relays on a full outbox; how long they took, from the first mark to the
    last, and the CPU the relays and the broker spent meanwhile per 1,000 messages."""
    from django.db.models import Max, Min

    from shop.pipeline.events import subscribers
    from shop.pipeline.models import OutboxEvent

    command = argv(commands()["relay"])
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(running(f"relay-{relays}-{i}", command, env, log_dir)) for i in range(relays)]
        deadline = time.monotonic() + timeout
        roles = {"relay": [p.pid for p in procs], "broker": broker_pids()}
        cpu: list[dict[str, float]] = []
        while OutboxEvent.objects.filter(published_at__isnull=True).exists():
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the relays did not drain the outbox: {log_tail(log_dir, f'relay-{relays}-0')}")
            if not cpu and OutboxEvent.objects.filter(published_at__isnull=False).exists():
                cpu.append(cpu_seconds(roles))  # from the first mark: the relays' start-up is not counted
            time.sleep(0.1)
        cpu.append(cpu_seconds(roles))
    span = OutboxEvent.objects.aggregate(first=Min("published_at"), last=Max("published_at"))
    seconds = max((span["last"] - span["first"]).total_seconds(), 1e-3)
    per_event = len(subscribers("order.placed"))
    messages = per_event * events
    spent = {role: cpu[-1][role] - cpu[0][role] for role in roles} if len(cpu) == 2 else {}
    return {
        "relays": relays,
        "events": events,
        "messages_per_event": per_event,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "messages_per_s": messages / seconds,
        **{f"{role}_cpu_ms_per_1000_messages": 1e6 * used / messages for role, used in spent.items() if roles[role]},
    }


def broker_pids() -> list[int]:
    """RabbitMQ's Erlang VM when it runs on this machine (its CPU per message is the other half of
    a publish's cost); none on the embedded broker or a remote one."""
    found = []
    for name in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if name.isdigit() and Path(f"/proc/{name}/comm").read_text().strip() == "beam.smp":
                found.append(int(name))
    return found


def cpu_seconds(roles: dict[str, list[int]]) -> dict[str, float]:
    table = procstat.scan_proc()
    return {role: sum(table[pid].ticks for pid in pids if pid in table) / procstat.CLK_TCK for role, pids in roles.items()}


def purge(broker_url: str) -> None:
    """Empty the vhost's queues (nobody consumes them here) before the next step."""
    from celery import current_app as app

    with app.connection_for_write(broker_url) as conn:
        for queue in app.amqp.queues.values():
            queue(conn.default_channel).purge()


def run(ctx: Run) -> Result:
    events = ctx.count(5000, 200)
    result = Result("relay", settings={"events": events, "relays": list(RELAY_COUNTS), "event": "order.placed"})
    steps = []
    with ctx.shop("relay", processes=False) as shop:
        assert shop.log_dir is not None
        env = {**shop.env, "LOG_LEVEL": "WARNING"}
        for relays in RELAY_COUNTS:
            fill(events)
            steps.append(drain(relays, events, env, shop.log_dir, ctx.seconds(600, 120)))
            purge(shop.broker_url)
    for step in steps:
        result.add(*figures(step))
    result.data = {"steps": steps, "goal_ratio": GOAL_RATIO}
    chart(ctx, result, steps)
    return result


def figures(step: dict[str, Any]) -> list[Figure]:
    """A step's rate beside both publish ceilings, and the CPU it cost the relays and the broker."""
    how = f"{step['events']} order.placed rows x {step['messages_per_event']} subscribers, first mark to last"
    rate = round(step["messages_per_s"])
    found = [
        Figure(f"relay drain, {step['relays']} relay(s)", rate, "msg/s", how, ceiling="confirmed_publish", higher_is_better=True),
        Figure(
            f"relay drain, {step['relays']} relay(s), beside batched publishes",
            rate,
            "msg/s",
            how,
            ceiling="confirmed_publish_batched",
            higher_is_better=True,
        ),
    ]
    for role, what in (("relay", "the relays' processes"), ("broker", "RabbitMQ's Erlang VM")):
        if f"{role}_cpu_ms_per_1000_messages" in step:
            cost = round(step[f"{role}_cpu_ms_per_1000_messages"])
            name = f"{role} CPU per 1,000 messages, {step['relays']} relay(s)"
            found.append(Figure(name, cost, "ms", f"{what}, from /proc, first mark to last"))
    return found


def chart(ctx: Run, result: Result, steps: list[dict[str, Any]]) -> None:
    """The relays' rates beside the two publish ceilings and the goal."""
    from bench import charts

    bars = {f"{s['relays']} relay(s)": s["messages_per_s"] for s in steps}
    for key, label in (("confirmed_publish", "one by one, confirmed"), ("confirmed_publish_batched", "batched, confirmed")):
        if key in ctx.ceilings:
            bars[label] = ctx.ceilings[key]["value"]
    if "confirmed_publish" in ctx.ceilings:
        bars[f"goal: {GOAL_RATIO:g}x one by one"] = GOAL_RATIO * ctx.ceilings["confirmed_publish"]["value"]
    path = ctx.out_dir / "relay.png"
    charts.bars_chart({"messages/s": bars}, path, "The outbox relay draining a backlog, beside publishing alone", "messages/s")
    result.charts.append(str(path))
