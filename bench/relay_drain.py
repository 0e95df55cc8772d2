"""How fast the outbox relay drains a backlog, beside two publish ceilings measured in the same run.

    DATABASE_URL=postgres://.../shop_x CELERY_BROKER_URL=amqp://.../x SECRET_KEY=... \\
        python -m bench.relay_drain [--events 5000] [--relays 1 2] [--batch 100]

Uses the database and vhost it is given (migrated, no workers: the queues fill and are purged).
For each relay count it fills the outbox with ``--events`` ``order.placed`` rows (4 subscribers,
so 4 messages each), starts that many ``manage.py relay`` processes and reports messages per
second between the first and the last ``published_at``. The ceilings publish messages of the same
size to a quorum queue on the same vhost with kombu/py-amqp alone: one by one, each confirmed
before the next (what ``confirm_publish`` does), and in batches confirmed once. A figure, not an
assertion: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = {
    "lines": [{"sku": f"BENCH-{i:03d}", "quantity": 1, "price": "12.50"} for i in range(3)],
    "amount": "37.50",
    "email": "bench@example.com",
    "address": {"line1": "1 Bench Street", "city": "Testville", "postcode": "12345"},
}


def _ceiling_queue(conn: Any) -> Any:
    from kombu import Exchange, Queue

    from shop.pipeline.queues import quorum_arguments

    queue = Queue(
        "bench-ceiling",
        Exchange("bench-ceiling", type="topic", durable=True),
        routing_key="bench-ceiling",
        durable=True,
        queue_arguments=quorum_arguments(),
    )(conn.default_channel)
    queue.declare()
    return queue


def ceilings(count: int, batch: int) -> dict[str, float]:
    """Messages/s of pure kombu publishing: each confirmed in turn, and confirmed per batch."""
    from celery import current_app as app
    from kombu import Producer

    from shop.pipeline.confirms import ConfirmTracker

    kwargs = {"event_id": str(uuid.uuid4()), "kind": "order.placed", "order_id": "ORD-BENCH", "payload": PAYLOAD}
    # A task message's body and headers (Celery's header table costs as much to encode as the body).
    message = app.amqp.as_task_v2("ceiling:task", "inventory.tasks.reserve_stock", (), kwargs)
    body, headers = message.body, dict(message.headers, request_id="req-bench")
    out = {}
    with app.connection_for_write(transport_options={"confirm_publish": True}) as conn:
        queue = _ceiling_queue(conn)
        producer = Producer(conn, exchange=queue.exchange, routing_key="bench-ceiling")
        started = time.perf_counter()
        for _ in range(count):
            producer.publish(body, serializer="json", delivery_mode=2, headers=headers, confirm_timeout=10)
        out["one_by_one_confirmed"] = count / (time.perf_counter() - started)
    with app.connection_for_write(transport_options={"confirm_publish": False}) as conn:
        producer = Producer(conn, exchange=queue.exchange, routing_key="bench-ceiling")
        tracker = ConfirmTracker(producer.channel)
        started = time.perf_counter()
        for first in range(0, count, batch):
            for _ in range(min(batch, count - first)):
                producer.publish(body, serializer="json", delivery_mode=2, headers=headers)
            assert tracker.wait(10), "no confirms"
        out["batch_confirmed"] = count / (time.perf_counter() - started)
        queue(conn.default_channel).delete()
    return out


def fill(events: int) -> None:
    from shop.pipeline.models import OutboxEvent

    OutboxEvent.objects.all().delete()
    rows = [
        OutboxEvent(kind="order.placed", order_id=f"ORD-B{i:06d}", payload=PAYLOAD, request_id=f"req-{i}") for i in range(events)
    ]
    OutboxEvent.objects.bulk_create(rows, batch_size=1000)


def drain(relays: int, batch: int, events: int) -> dict[str, float]:
    from django.db.models import Max, Min

    from shop.pipeline.models import OutboxEvent

    env = dict(os.environ, LOG_LEVEL="WARNING")
    argv = [sys.executable, "manage.py", "relay", "--batch", str(batch)]
    procs = [subprocess.Popen(argv, cwd=ROOT, env=env) for _ in range(relays)]
    try:
        deadline = time.monotonic() + 600
        while OutboxEvent.objects.filter(published_at__isnull=True).exists():
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("the relay did not drain the outbox")
            time.sleep(0.2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    span = OutboxEvent.objects.aggregate(first=Min("published_at"), last=Max("published_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    return {"relays": relays, "events_per_s": events / seconds, "messages_per_s": 4 * events / seconds, "seconds": seconds}


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--relays", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--ceiling-messages", type=int, default=5000)
    options = parser.parse_args()
    django.setup()
    from celery import current_app as app

    print("ceilings (msg/s):", {k: round(v) for k, v in ceilings(options.ceiling_messages, 4 * options.batch).items()})
    for relays in options.relays:
        fill(options.events)
        result = drain(relays, options.batch, options.events)
        app.control.purge()
        print(
            f"{relays} relay(s), batch {options.batch}: {result['messages_per_s']:.0f} msg/s "
            f"({result['events_per_s']:.0f} events/s, {result['seconds']:.2f} s)"
        )
    os.system("uptime")


if __name__ == "__main__":
    main()
