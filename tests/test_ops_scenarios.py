"""Demo scenarios from the operations page: offered only where the fault switches are on, each
run recorded with when it started and ended and what it did; a Black Friday burst through the
HTTP API, a payment outage that heals, a killed pool process that its worker replaces."""

from __future__ import annotations

import threading
from typing import Any

import psutil
import pytest

from orders.models import Order
from shop.ops import scenarios
from shop.ops.models import ScenarioRun
from shop.pipeline import faults
from tests import harness

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(client: Any, django_user_model: Any) -> Any:
    client.force_login(django_user_model.objects.create_user("scenario-staff", password="x" * 20, is_staff=True))
    return client


def test_scenarios_are_offered_only_where_fault_switches_are_on(staff: Any, settings: Any) -> None:
    assert 'id="ops-scenario-form"' in staff.get("/ops/").content.decode()
    settings.FAULTS_ENABLED = False
    assert 'id="ops-scenario-form"' not in staff.get("/ops/").content.decode()
    answer = staff.post("/ops/actions/scenario", {"scenario": "black_friday"}, follow=True)
    assert next(str(m) for m in answer.context["messages"]).startswith("Nothing started: demo scenarios run only where")
    assert not ScenarioRun.objects.exists()


def test_an_unknown_scenario_is_refused_by_name(staff: Any) -> None:
    answer = staff.post("/ops/actions/scenario", {"scenario": "meteor"}, follow=True)
    assert "no scenario 'meteor'" in next(str(m) for m in answer.context["messages"])


def test_black_friday_places_orders_through_the_http_api(catalog: Any, live_server: Any) -> None:
    record = ScenarioRun.objects.create(name="black_friday", staff="Grace")
    done = scenarios.run(record.pk, orders=6, seconds=1, base_url=live_server.url)
    assert done.ended_at is not None and done.detail.startswith("6 checkouts in"), done.detail
    assert "6 x 201" in done.detail
    assert Order.objects.filter(email__startswith="black-friday-").count() == 6
    assert scenarios.recent()[0]["detail"] == done.detail


def test_a_payment_outage_fails_the_gateway_then_heals() -> None:
    faults.clear_cache()
    seen: list[str] = []
    probe = threading.Timer(0.3, lambda: (faults.clear_cache(), seen.append(faults.get("gateway_failure_rate"))))
    probe.start()
    detail = scenarios.payment_outage(seconds=0.8)
    probe.join()
    faults.clear_cache()
    assert seen == ["1"] and faults.get("gateway_failure_rate") == "0"
    assert "failed for 1 s" in detail


@pytest.mark.pipeline
def test_killing_a_worker_from_the_page_kills_one_pool_process_and_the_worker_replaces_it(
    staff: Any, without_shared_pipeline: None, tmp_path: Any
) -> None:
    worker = harness.worker(tmp_path, name="payments", queues="payments", concurrency=2, beat=False)
    try:

        def pool() -> list[int] | None:
            children = [p.pid for p in psutil.Process(worker.pid).children()]
            return children if len(children) >= 2 else None

        before = harness.wait_until(pool, 60, what="the worker's pool")
        harness.wait_until(lambda: scenarios.app_stats(), 60, what="the worker to answer inspect")
        staff.post("/ops/actions/scenario", {"scenario": "kill_worker"})
        record = ScenarioRun.objects.get()
        harness.wait_until(lambda: ScenarioRun.objects.get().ended_at, 60, what="the scenario to end")
        record.refresh_from_db()
        assert record.detail.startswith("SIGKILL to pool process"), record.detail
        killed = int(record.detail.split()[4])
        assert killed in before
        harness.wait_until(lambda: (now := pool()) and killed not in now and len(now) == 2, 30, what="a new pool process")
        assert worker.alive()
    finally:
        worker.stop()
