"""The process arrangements: a worker per queue (the default, as compose runs it) or the small
machine's three. Either way every queue of the pipeline map has exactly one worker group, the
processes fit in the database's connections, and the critical stages are never behind a
low-priority worker."""

from __future__ import annotations

import shlex

import pytest

from shop.local.processes import ARRANGEMENTS, commands, connection_budget, worker_serving
from shop.pipeline.events import QUEUES
from shop.pipeline.priority import CRITICAL_QUEUES, worker_niceness


def consumed(procs: dict[str, str]) -> list[str]:
    found = []
    for name, command in procs.items():
        if name.startswith("worker-"):
            args = shlex.split(command)
            found += args[args.index("-Q") + 1].split(",")
    return found


@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_every_queue_has_exactly_one_worker_group(arrangement: str) -> None:
    procs = commands(arrangement=arrangement)
    assert sorted(consumed(procs)) == sorted(QUEUES)
    assert {"web", "relay", "beat", "flower"} <= set(procs)
    for name, command in procs.items():
        if name.startswith("worker-"):  # the node name is the process name without "worker-"
            assert f"-n {name.removeprefix('worker-')}@%h" in command


def test_the_small_arrangement_has_half_the_processes_and_keeps_critical_stages_apart() -> None:
    small, default = commands(arrangement="small"), commands()
    assert len(small) <= len(default) / 2 + 1
    assert connection_budget(small)["total"] < connection_budget(default)["total"]
    critical = shlex.split(small[worker_serving("payments", small)])
    queues = critical[critical.index("-Q") + 1].split(",")
    assert set(queues) == CRITICAL_QUEUES, "no email or label waits in front of a payment"
    assert worker_niceness(queues) < worker_niceness(["notifications"])
    assert worker_serving("payments", default) == "worker-payments"


def test_an_unknown_arrangement_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="default, small"):
        commands(arrangement="tiny")
