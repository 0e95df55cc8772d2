"""Each fault alone, on real processes: the guarantees hold and the checker finds nothing.

Every test runs its own relay and workers under a supervisor that restarts what
dies, injects one fault from ``shop/proof/chaos/outages.py``, waits for its orders to finish
and runs the invariant checker (``manage.py audit``). A test that stops a
service starts it again before it ends.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from orders.payments.models import GatewayTransaction
from shop.pipeline import deadletters
from shop.pipeline.models import DeadLetter, OutboxEvent
from shop.proof import audit, chaos
from tests import harness
from tests.fixtures import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

OTHER_QUEUES = "orders,fraud,inventory,shipping,notifications"


class Cluster(Pipeline):
    """The pipeline's processes under a supervisor: payments on a worker of its own with one child."""

    def __init__(self, sup: chaos.Supervisor) -> None:
        super().__init__(sup.log_dir)
        self.sup = sup

    def logs(self) -> str:
        """Each process's errors and warnings from its whole log (the first cause of a failure
        is often long gone from its tail), then the tail."""
        out = []
        for name in self.sup.services:
            text = self.sup.log(name, 10**7)
            errors = [line for line in text.splitlines() if any(w in line for w in ("ERROR", "WARNING", "Error", "error:"))]
            out.append(f"===== {name}: {len(errors)} error or warning line(s)\n" + "\n".join(errors[:80]))
            out.append(f"===== {name}: the tail\n{text[-6000:]}")
        return "\n".join(out)

    def wait_log(self, name: str, text: str, timeout: float = 30, count: int = 1) -> None:
        harness.wait_until(lambda: self.sup.log(name, 10**7).count(text) >= count, timeout, what=f"{text!r} in {name}'s log")


@pytest.fixture
def cluster(catalog, without_shared_pipeline, tmp_path) -> Iterator[Cluster]:
    argvs = {
        "relay": harness.relay_argv(),
        "worker-payments": harness.worker_argv(tmp_path, name="payments", queues="payments", concurrency=1, beat=False),
        "worker-rest": harness.worker_argv(tmp_path, name="rest", queues=OTHER_QUEUES, concurrency=2, beat=True),
    }
    env = harness.child_env(OUTBOX_CLAIM_SECONDS="2", PIPELINE_MAX_RETRIES="10", PIPELINE_RETRY_BACKOFF_MAX="2")
    harness.empty_broker()
    sup = chaos.Supervisor(argvs, env, tmp_path)
    sup.start()
    cluster = Cluster(sup)
    try:
        yield cluster
    finally:
        try:
            chaos.heal()
            cluster.wait_quiet(60)
        finally:
            sup.stop()
            harness.empty_broker()


def assert_clean(order_ids: list[str], allowed_dead_letters: int = 0) -> audit.Report:
    report = audit.run(expected_orders=order_ids, deadline_seconds=120, allowed_dead_letters=allowed_dead_letters)
    letters = list(DeadLetter.objects.values_list("task", "message_id", "status", "error"))
    assert report.ok, "\n".join([*(str(v) for v in report.violations), *(str(letter) for letter in letters)])
    return report


def authorisations(order_id: str) -> int:
    return GatewayTransaction.objects.filter(reference=order_id, operation="authorize", approved=True).count()


def place(shop_api) -> str:
    """One order from a new customer (the fraud screen's velocity rule stays quiet)."""
    return shop_api.place(email=f"{uuid.uuid4().hex[:12]}@example.com")["id"]


def started(order_id: str) -> str:
    return f"authorize_payment: order.placed for order {order_id}"


def test_worker_child_killed_mid_task(cluster, shop_api, fault):
    fault("gateway_latency_ms", "3000")
    order = place(shop_api)
    cluster.wait_log("worker-payments", started(order))
    (child,) = cluster.sup.children("worker-payments")
    os.kill(child, signal.SIGKILL)
    fault("gateway_latency_ms", "5")

    assert cluster.wait_terminal([order]) == {order: "delivered"}
    log = cluster.sup.log("worker-payments", 10**7)
    assert "signal 9 (SIGKILL)" in log  # the child died holding the task ...
    assert log.count(started(order)) >= 2  # ... which the broker delivered again
    assert authorisations(order) == 1
    assert_clean([order])


def test_worker_main_process_killed_mid_task(cluster, shop_api, fault):
    fault("gateway_latency_ms", "3000")
    order = place(shop_api)
    cluster.wait_log("worker-payments", started(order))
    os.kill(cluster.sup.pid("worker-payments"), signal.SIGKILL)
    harness.wait_until(lambda: cluster.sup.restarts().get("worker-payments"), 10, what="the supervisor to restart the worker")
    fault("gateway_latency_ms", "5")

    assert cluster.wait_terminal([order]) == {order: "delivered"}
    assert cluster.sup.log("worker-payments", 10**7).count(started(order)) >= 2
    assert authorisations(order) == 1
    assert_clean([order])


def test_relay_killed_between_publish_and_mark(cluster, shop_api, fault):
    cluster.sup.pause("relay")  # the relay meets the order and the switch together
    order = place(shop_api)
    fault("relay_crash_after_publish", "1")
    cluster.sup.resume("relay")
    harness.wait_until(lambda: cluster.sup.restarts().get("relay"), 20, what="the relay to be killed and restarted")
    fault("relay_crash_after_publish", "0")

    assert cluster.wait_terminal([order]) == {order: "delivered"}
    # The order can finish before the dead relay's lease runs out; the row is published again after it.
    placed = harness.wait_until(
        lambda: OutboxEvent.objects.filter(order_id=order, kind="order.placed", published_at__isnull=False).first(),
        30,
        what="the order.placed row to be marked published",
    )
    assert placed.publish_attempts >= 2  # published, killed before the mark, published again after the lease
    assert authorisations(order) == 1
    assert_clean([order])


@pytest.mark.rabbitmq
def test_broker_restart_with_tasks_in_flight(cluster, shop_api, fault):
    fault("gateway_latency_ms", "1500")
    before = [place(shop_api) for _ in range(4)]
    cluster.wait_log("worker-payments", started(before[0]))
    outage = threading.Thread(target=chaos.restart_broker, kwargs={"down_seconds": 4})
    try:
        outage.start()
        time.sleep(1)
        during = [place(shop_api) for _ in range(3)]  # checkout does not need the broker
    finally:
        outage.join(120)
        chaos.broker_start()
    fault("gateway_latency_ms", "5")

    ids = before + during
    assert set(cluster.wait_terminal(ids, timeout=120).values()) == {"delivered"}
    assert all(authorisations(order) == 1 for order in ids)
    assert_clean(ids)


def test_database_restart_with_tasks_in_flight(cluster, shop_api, fault):
    fault("gateway_latency_ms", "1500")
    before = [place(shop_api) for _ in range(4)]
    cluster.wait_log("worker-payments", started(before[0]))
    try:
        chaos.restart_database()
    finally:
        chaos.database_start()
    after = [place(shop_api) for _ in range(2)]
    fault("gateway_latency_ms", "5")

    ids = before + after
    assert set(cluster.wait_terminal(ids, timeout=120).values()) == {"delivered"}
    logs = "".join(cluster.sup.log(name, 10**7) for name in cluster.sup.services)
    signs = ("OperationalError", "terminating connection", "connection lost", "closed the connection")
    assert any(sign in logs for sign in signs)  # the restart did hit the processes
    assert all(authorisations(order) == 1 for order in ids)
    assert_clean(ids)


def test_malformed_message_is_parked_while_good_orders_complete(cluster, shop_api):
    from shop.celery import app

    good = place(shop_api)
    event_id = str(uuid.uuid4())
    app.send_task(
        "orders.payments.tasks.authorize_payment",
        kwargs={"event_id": event_id, "kind": "order.placed", "order_id": "NO-SUCH-ORDER", "payload": {"garbage": [1, 2]}},
        task_id=f"{event_id}:authorize_payment",
        queue="payments",
    )
    more = [place(shop_api) for _ in range(3)]

    assert set(cluster.wait_terminal([good, *more]).values()) == {"delivered"}
    letter = harness.wait_until(lambda: DeadLetter.objects.filter(message_id=event_id).first(), 30, what="the dead letter")
    assert letter.status == DeadLetter.Status.PARKED
    assert letter.kwargs["payload"] == {"garbage": [1, 2]}  # the payload is kept for inspection and replay
    assert letter.error
    assert_clean([good, *more], allowed_dead_letters=1)


@pytest.mark.rabbitmq
def test_handler_that_always_crashes_is_dead_lettered_then_replayed(cluster, shop_api, fault):
    """A poison order kills its worker child on every delivery: RabbitMQ's delivery limit moves
    each message to the dead-letter exchange, the relay parks them, good orders keep completing,
    and once the bug is fixed a staff replay completes the order."""
    cluster.sup.pause("relay")  # so that no handler runs before every worker sees the switch
    poison = place(shop_api)
    fault("poison_order", poison)
    cluster.sup.resume("relay")
    good = [place(shop_api) for _ in range(3)]

    assert set(cluster.wait_terminal(good, timeout=90).values()) == {"delivered"}
    letters = harness.wait_until(
        lambda: (qs := DeadLetter.objects.filter(order_id=poison)).count() >= 4 and list(qs), 120, what="4 dead letters"
    )
    assert all("dead-lettered by the broker" in letter.error for letter in letters)
    assert {letter.task.rsplit(".", 1)[-1] for letter in letters} == {
        "authorize_payment",
        "screen_order",
        "reserve_stock",
        "send_order_email",
    }

    fault("poison_order", "")  # the fix is deployed; staff replay the parked messages
    for letter in letters:
        assert deadletters.replay(letter.pk)
    assert cluster.wait_terminal([poison]) == {poison: "delivered"}
    assert_clean([poison, *good])


def test_duplicate_publishing(cluster, shop_api, fault):
    fault("duplicate_publish", "1")
    ids = [place(shop_api) for _ in range(4)]
    assert set(cluster.wait_terminal(ids).values()) == {"delivered"}
    fault("duplicate_publish", "0")
    assert all(authorisations(order) == 1 for order in ids)
    assert_clean(ids)


@pytest.mark.rabbitmq
def test_worker_paused_past_the_consumer_timeout(catalog, without_shared_pipeline, tmp_path, shop_api, fault):
    """SIGSTOP a worker holding a task for longer than RabbitMQ's consumer timeout: the broker
    takes the delivery back and gives it to another worker; the paused one resumes and finishes
    its copy too; the effect happens once."""
    with chaos.short_consumer_timeout(3000):  # only channels opened from now on
        argvs = {
            "relay": harness.relay_argv(),
            "worker-payments": harness.worker_argv(tmp_path, name="payments", queues="payments", concurrency=1, beat=False),
            "worker-payments-2": harness.worker_argv(tmp_path, name="payments2", queues="payments", concurrency=1, beat=False),
            "worker-rest": harness.worker_argv(tmp_path, name="rest", queues=OTHER_QUEUES, concurrency=2, beat=True),
        }
        sup = chaos.Supervisor(argvs, harness.child_env(PIPELINE_MAX_RETRIES="10"), tmp_path)
        sup.start()
        cluster = Cluster(sup)
        try:
            fault("gateway_latency_ms", "2000")
            order = place(shop_api)
            holder = harness.wait_until(
                lambda: next((n for n in ("worker-payments", "worker-payments-2") if started(order) in sup.log(n, 10**7)), None),
                30,
                what="a payments worker to take the order",
            )
            sup.pause(holder)
            time.sleep(8)
            sup.resume(holder)
            fault("gateway_latency_ms", "5")
            assert cluster.wait_terminal([order], timeout=90) == {order: "delivered"}
            assert authorisations(order) == 1
            other = "worker-payments-2" if holder == "worker-payments" else "worker-payments"
            assert started(order) in sup.log(other, 10**7)  # the broker took the delivery back and gave it to the other
            assert_clean([order])
        finally:
            chaos.heal()
            cluster.wait_quiet(60)
            sup.stop()
            harness.empty_broker()
