"""``manage.py bench SCENARIO``: the shop measured, each figure beside the stack's ceiling of the same run."""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench import report
from bench.scenarios import SCENARIOS, Run
from bench.scenarios import scenario as scenario_named
from shop.local.processes import ARRANGEMENTS


def scenario_names(asked: set[str], *, ceiling: bool = True) -> list[str]:
    """The scenarios to run, in the bench's order whatever order they were asked in (saturate
    before the burst and the soak it sizes), the ceilings first unless told otherwise."""
    names = [name for name in SCENARIOS if "all" in asked or name in asked]
    if ceiling and names[:1] != ["ceiling"]:
        names.insert(0, "ceiling")
    return names


def verdict_of(audit: dict) -> str:
    """The checker's word on a scenario; a scenario that places no order has none."""
    if not audit:
        return "no order placed, nothing to check"
    return "checker clean" if audit.get("clean", True) else "CHECKER FOUND VIOLATIONS"


class Command(BaseCommand):
    help = (
        "Run a benchmark scenario against a shop of its own (a fresh database and RabbitMQ vhost, the demo's "
        "processes), print every figure beside the stack's ceiling measured in the same run, write JSON and charts "
        "under bench/results/. Exits 1 if the checker finds a violation after any scenario."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "scenario",
            nargs="+",
            choices=[*SCENARIOS, "all"],
            help="one or more, run in the bench's order (saturate before burst and soak, which it sizes)",
        )
        parser.add_argument("--quick", action="store_true", help="a few seconds per scenario: checks that it runs")
        parser.add_argument("--url", help="drive a shop that is already running (its DATABASE_URL and broker configured here)")
        parser.add_argument("--out", type=Path, default=Path("bench/results"), help="folder for the JSON and PNG files")
        parser.add_argument("--no-ceiling", action="store_true", help="skip measuring the ceilings before a single scenario")
        parser.add_argument("--soak-orders", type=int, help="orders of the soak scenario (default 10,000)")
        parser.add_argument(
            "--soak-rate", type=float, help="orders/s of the soak (default 0.8x the overall rate saturate measured, or 5)"
        )
        parser.add_argument("--keep", action="store_true", help="keep each scenario's database and process logs")
        parser.add_argument(
            "--arrangement",
            choices=ARRANGEMENTS,
            default="default",
            help="the shop's processes: a worker per queue (default), or the small machine's three (small)",
        )

    def handle(
        self,
        *args,
        scenario: list[str],
        quick: bool,
        url: str | None,
        out: Path,
        no_ceiling: bool,
        keep: bool,
        soak_orders: int | None,
        soak_rate: float | None = None,
        arrangement: str = "default",
        **options,
    ) -> None:
        asked = set(scenario)
        if url and asked & {"kill", "all"}:
            raise CommandError("kill SIGKILLs the bench's own worker: it cannot run against --url")
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # unwind: stop processes, drop databases
        for noisy in ("httpx", "httpcore", "shop.chaos"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        run = Run(
            quick=quick, url=url, keep=keep, out_dir=out, soak_orders=soak_orders, soak_rate=soak_rate, arrangement=arrangement
        )
        names = scenario_names(asked, ceiling=not no_ceiling)
        started, results = time.monotonic(), []
        info = report.machine(settings.CELERY_BROKER_URL)
        label = "all" if "all" in asked else "-".join(n for n in names if n != "ceiling" or asked == {"ceiling"})
        path = out / f"{label}{'-quick' if quick else ''}.json"
        for name in names:
            self.stdout.write(f"== {name}{' (quick)' if quick else ''}")
            began = time.monotonic()
            result = scenario_named(name)(run)
            results.append(result)
            verdict = verdict_of(result.audit)
            self.stdout.write(f"   {name} done in {time.monotonic() - began:.0f} s, {verdict}")
            # Written after every scenario: a long run stopped half-way keeps what it measured.
            options = {
                "quick": quick,
                "url": url,
                "arrangement": arrangement,
                "seconds": round(time.monotonic() - started),
                "done": len(results),
            }
            report.write(results, run.ceilings, info, path, options)
        self.stdout.write(report.table(results, run.ceilings))
        self.stdout.write(
            f"\n{len(results)} scenario(s) in {time.monotonic() - started:.0f} s on {info['cores']} cores; written to {path}"
        )
        if not all(r.audit.get("clean", True) for r in results):
            sys.exit(1)
