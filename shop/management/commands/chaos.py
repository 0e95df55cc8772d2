"""``manage.py chaos``: orders under a seeded storm of faults, then the invariant checker."""

import signal
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand

from shop.proof import chaos


class Command(BaseCommand):
    help = (
        "Place orders at a steady rate while workers, the relay, RabbitMQ and PostgreSQL are killed, restarted "
        "and paused on a seeded schedule; heal, wait for quiet, audit. Exits 1 on any violation."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--orders", type=int, default=500)
        parser.add_argument("--rate", type=float, default=8.0, help="orders per second")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--interval", type=float, default=4.0, help="mean seconds between faults")
        parser.add_argument("--faults", default=",".join(chaos.FAULT_KINDS), help="comma-separated fault kinds")
        parser.add_argument("--json", type=Path, default=Path("bench/results/chaos.json"), help="where to write the summary")
        parser.add_argument("--logs", type=Path, help="folder for the processes' logs (default: a temp dir)")
        parser.add_argument(
            "--database", default="shop_chaos", help="database created afresh for the run, on the configured server"
        )

    def handle(self, *args, orders, rate, seed, interval, faults, json, logs, database, **options) -> None:
        kinds = [k for k in faults.split(",") if k]
        unknown = set(kinds) - set(chaos.FAULT_KINDS)
        if unknown:
            self.stderr.write(f"unknown fault kinds: {', '.join(sorted(unknown))}")
            sys.exit(2)
        # SIGTERM unwinds like Ctrl-C, so the supervised processes are stopped and the broker's settings restored.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        log_dir = logs or Path(tempfile.mkdtemp(prefix="shop-chaos-"))
        chaos.use_fresh_database(database)  # the run's orders never mix with the demo's
        extra_env = {}
        if chaos.broker_restartable():  # nor its messages: a virtual host of its own
            extra_env["CELERY_BROKER_URL"] = chaos.own_vhost(database)
        self.stdout.write(f"chaos: {orders} orders at {rate}/s, seed {seed}, logs in {log_dir}")
        summary = chaos.run(
            orders=orders, rate=rate, seed=seed, interval=interval, kinds=kinds, log_dir=log_dir, extra_env=extra_env
        )
        chaos.write_json(summary, json)
        self.stdout.write(summary.text())
        self.stdout.write(f"summary written to {json}")
        if not summary.ok:
            sys.exit(1)
