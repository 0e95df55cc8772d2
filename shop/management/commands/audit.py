import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from shop.proof import audit


class Command(BaseCommand):
    help = "Check the pipeline's invariants (no loss, no double charge or email, stock conserved); exit 1 on a violation."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--deadline", type=float, default=120, help="seconds an open order may go without progress")
        parser.add_argument(
            "--grace", type=float, default=5.0, help="seconds an event may take to be processed (the quiet-only rules)"
        )
        parser.add_argument("--expect", type=Path, help="JSON list of order ids confirmed to customers")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, deadline: float, grace: float, expect: Path | None, json: bool, **options) -> None:
        expected = _load(expect) if expect else None
        report = audit.run(deadline_seconds=deadline, expected_orders=expected, grace_seconds=grace)
        if json:
            self.stdout.write(_dumps(report.as_dict()))
        else:
            self.stdout.write(" ".join(f"{k}={v}" for k, v in report.stats.items()))
            for finding in report.warnings:
                self.stdout.write(f"warning  {finding}")
            for finding in report.violations:
                self.stdout.write(f"VIOLATION {finding}")
            self.stdout.write("audit: ok" if report.ok else f"audit: {len(report.violations)} violation(s)")
        if not report.ok:
            sys.exit(1)


def _load(path: Path) -> list[str]:
    return json.loads(path.read_text())


def _dumps(data: dict) -> str:
    return json.dumps(data, indent=2, default=str)
