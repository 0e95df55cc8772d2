"""``manage.py bench`` runs one or several scenarios in the bench's own order."""

from __future__ import annotations

from bench.report import command_line
from bench.scenarios.base import Run
from bench.scenarios.soak import soak_rate
from shop.management.commands.bench import scenario_names


def test_several_scenarios_run_in_the_benchs_order_after_the_ceilings() -> None:
    assert scenario_names({"burst", "saturate"}) == ["ceiling", "saturate", "burst"]  # saturate sizes the burst
    assert scenario_names({"checkout"}, ceiling=False) == ["checkout"]
    assert scenario_names({"ceiling"}) == ["ceiling"]
    assert scenario_names({"all"})[0] == "ceiling" and "soak" in scenario_names({"all"})


def test_the_soak_runs_at_the_rate_asked_or_below_what_saturate_sustained() -> None:
    assert soak_rate(Run(soak_rate=8.0, found={"saturate": {"overall": 30.0}})) == 8.0
    assert soak_rate(Run(found={"saturate": {"overall": 10.0}})) == 8.0
    assert soak_rate(Run()) == 5.0


def test_the_results_name_the_command_that_made_them() -> None:
    argv = ["manage.py", "bench", "soak", "--soak-orders", "10000"]
    assert command_line(argv) == "python manage.py bench soak --soak-orders 10000"
