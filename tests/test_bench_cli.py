"""``manage.py bench`` runs one or several scenarios in the bench's own order."""

from __future__ import annotations

from shop.management.commands.bench import scenario_names


def test_several_scenarios_run_in_the_benchs_order_after_the_ceilings() -> None:
    assert scenario_names({"burst", "saturate"}) == ["ceiling", "saturate", "burst"]  # saturate sizes the burst
    assert scenario_names({"checkout"}, ceiling=False) == ["checkout"]
    assert scenario_names({"ceiling"}) == ["ceiling"]
    assert scenario_names({"all"})[0] == "ceiling" and "soak" in scenario_names({"all"})
