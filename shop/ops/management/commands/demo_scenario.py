"""``manage.py demo_scenario RUN_ID``: run a demo scenario the operations page recorded (shop/ops/scenarios.py)."""

from django.core.management.base import BaseCommand

from shop.ops import scenarios


class Command(BaseCommand):
    help = "Run a demo scenario started from the operations page (its ScenarioRun row), to its end."

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_id", type=int)

    def handle(self, *args, run_id: int, **options) -> None:
        record = scenarios.run(run_id)
        self.stdout.write(f"{record.name}: {record.detail}")
