"""``ceiling``: the stack's own limits on this machine, measured in the same run (``bench/ceilings.py``)."""

from __future__ import annotations

from bench import ceilings
from bench.scenarios.base import Figure, Result, Run


def run(ctx: Run) -> Result:
    result = Result("ceiling")
    with ctx.shop("ceiling", processes=False) as shop:
        assert shop.log_dir is not None
        measured = ceilings.measure(
            database_url=shop.env["DATABASE_URL"], broker_url=shop.broker_url, log_dir=shop.log_dir, quick=ctx.quick, env=shop.env
        )
    ctx.ceilings.update(measured)
    for name, c in measured.items():
        result.add(Figure(name, c["value"], c["unit"], c["how"], higher_is_better=c.get("higher_is_better", False)))
    result.data = {"ceilings": measured}
    return result
