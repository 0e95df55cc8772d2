"""End to end: the API, the outbox, the relay and real worker processes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from inventory.models import StockItem
from notifications.models import MailboxMessage
from orders.models import Order
from orders.payments.models import GatewayTransaction, Payment
from shop.pipeline.models import DeadLetter, OutboxEvent, ProcessedMessage
from tests.fixtures import CARD_DECLINED, CARD_NO_FUNDS, CARD_TIMEOUT, order_body
from tests.harness import relay, wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


def kinds(order_id: str) -> list[str]:
    return list(OutboxEvent.objects.filter(order_id=order_id).order_by("id").values_list("kind", flat=True))


def gateway_ops(order_id: str) -> dict[str, int]:
    ops: dict[str, int] = {}
    for op in GatewayTransaction.objects.filter(reference=order_id, approved=True).values_list("operation", flat=True):
        ops[op] = ops.get(op, 0) + 1
    return ops


def emails(order_id: str) -> list[str]:
    return sorted(MailboxMessage.objects.filter(order_id=order_id).values_list("kind", flat=True))


def test_happy_path_reaches_delivered(pipeline, shop_api):
    order = shop_api.place(sku="SKU-2", quantity=2)
    assert order["status"] == "placed"

    assert pipeline.wait_terminal([order["id"]]) == {order["id"]: "delivered"}

    timeline = kinds(order["id"])
    assert timeline[0] == "order.placed"
    assert {"payment.authorized", "fraud.cleared", "stock.reserved"} <= set(timeline)
    ready = timeline.index("order.ready")
    assert all(timeline.index(k) < ready for k in ("payment.authorized", "fraud.cleared", "stock.reserved"))
    assert timeline.index("shipment.created") < timeline.index("shipment.in_transit") < timeline.index("order.delivered")
    assert gateway_ops(order["id"]) == {"authorize": 1, "capture": 1}
    assert Payment.objects.get(order_id=order["id"]).status == "captured"
    stock = StockItem.objects.get(sku="SKU-2")
    assert (stock.available, stock.reserved, stock.shipped) == (3, 0, 2)
    assert emails(order["id"]) == ["received", "shipped"]
    assert not DeadLetter.objects.exists()


@pytest.mark.parametrize(
    ("card", "reason"),
    [(CARD_DECLINED, "card declined"), (CARD_NO_FUNDS, "insufficient funds")],
)
def test_declined_card_cancels_and_releases_stock(pipeline, shop_api, card, reason):
    order = shop_api.place(sku="SKU-2", quantity=2, card=card)

    assert pipeline.wait_terminal([order["id"]]) == {order["id"]: "cancelled"}
    assert reason in Order.objects.get(public_id=order["id"]).cancel_reason
    pipeline.wait_quiet()
    stock = StockItem.objects.get(sku="SKU-2")
    assert (stock.available, stock.reserved, stock.shipped) == (5, 0, 0)
    assert gateway_ops(order["id"]) == {}
    assert emails(order["id"]) == ["cancelled", "received"]


def test_gateway_timeout_cancels_and_voids_the_authorisation(pipeline, shop_api):
    order = shop_api.place(card=CARD_TIMEOUT)

    assert pipeline.wait_terminal([order["id"]], timeout=90) == {order["id"]: "cancelled"}
    pipeline.wait_quiet()
    # The gateway did authorise (its answer was lost): the compensation found it and voided it.
    assert gateway_ops(order["id"]) == {"authorize": 1, "void": 1}
    assert Payment.objects.get(order_id=order["id"]).status == "voided"
    assert StockItem.objects.get(sku="SKU-1").available == 100


def test_gateway_outage_outlasting_the_retries_cancels_the_order(pipeline, shop_api, fault):
    """Every gateway call answers 503: the authorisation is retried, then given up: the order is
    cancelled, not parked. Its compensation (asking the gateway whether anything needs voiding)
    meets the same outage: retried, then parked for staff, never acked as done; a replay once
    the gateway is back finishes it."""
    from shop.pipeline import deadletters

    fault("gateway_failure_rate", "1")
    order = shop_api.place(sku="SKU-2")

    assert pipeline.wait_terminal([order["id"]], timeout=90) == {order["id"]: "cancelled"}
    letter = wait_until(
        lambda: DeadLetter.objects.filter(order_id=order["id"], task="orders.payments.tasks.cancel_payment").first(),
        90,
        what="the void to be parked while the gateway is down",
    )
    assert not DeadLetter.objects.filter(task="orders.payments.tasks.authorize_payment").exists()
    assert Payment.objects.get(order_id=order["id"]).status == "voiding"
    fault("gateway_failure_rate", "0")
    assert deadletters.replay(letter.pk)
    pipeline.wait_quiet()
    assert Payment.objects.get(order_id=order["id"]).status == "voided"
    assert "gateway unavailable" in Order.objects.get(public_id=order["id"]).cancel_reason
    assert gateway_ops(order["id"]) == {}
    assert StockItem.objects.get(sku="SKU-2").available == 5
    assert not DeadLetter.objects.filter(status=DeadLetter.Status.PARKED).exists()


def test_fraud_rejection_cancels_with_compensations(pipeline, shop_api):
    # A disposable email and a card issued in another country than the address: rejected.
    order = shop_api.place(email="x@mailinator.com", country="US")

    assert pipeline.wait_terminal([order["id"]]) == {order["id"]: "cancelled"}
    pipeline.wait_quiet()
    assert "fraud" in Order.objects.get(public_id=order["id"]).cancel_reason
    assert Payment.objects.get(order_id=order["id"]).status in ("voided", "cancelled")
    assert gateway_ops(order["id"]).get("capture") is None
    assert StockItem.objects.get(sku="SKU-1").available == 100
    assert emails(order["id"]) == ["cancelled", "received"]


def test_every_event_delivered_twice_takes_effect_once(pipeline, shop_api, fault):
    fault("duplicate_publish", "1")
    ids = [shop_api.place(sku="SKU-1", quantity=1)["id"] for _ in range(5)]

    assert set(pipeline.wait_terminal(ids).values()) == {"delivered"}
    pipeline.wait_quiet()
    for order_id in ids:
        assert gateway_ops(order_id) == {"authorize": 1, "capture": 1}
        assert emails(order_id) == ["received", "shipped"]
        assert kinds(order_id).count("order.ready") == 1
    stock = StockItem.objects.get(sku="SKU-1")
    assert (stock.available, stock.reserved, stock.shipped) == (95, 0, 5)
    assert ProcessedMessage.objects.count() > 0


def test_race_for_the_last_units(pipeline, live_server):
    """12 concurrent checkouts for the last 5 units: exactly 5 are delivered, stock ends at 0."""

    barrier = threading.Barrier(12)

    def checkout(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server.url, timeout=30) as client:
            barrier.wait()  # all twelve at once
            return client.post("/api/orders", json=order_body(sku="SKU-2", quantity=1))

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(checkout, range(12)))
    assert [r.status_code for r in responses].count(201) + [r.status_code for r in responses].count(422) == 12
    ids = [r.json()["id"] for r in responses if r.status_code == 201]
    statuses = pipeline.wait_terminal(ids)

    assert list(statuses.values()).count("delivered") == 5
    assert all(s == "cancelled" for s in statuses.values() if s != "delivered")
    stock = StockItem.objects.get(sku="SKU-2")
    assert (stock.available, stock.reserved, stock.shipped) == (0, 0, 5)


def test_checkout_confirms_while_the_broker_is_unreachable(pipeline, shop_api, tmp_path):
    """A relay that cannot reach its broker leaves events in the outbox; checkout never notices."""
    pipeline.procs["relay"].stop()
    dead = relay(tmp_path, name="relay-no-broker", CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//")
    try:
        ids = [shop_api.place()["id"] for _ in range(3)]
        assert Order.objects.filter(public_id__in=ids, status="placed").count() == 3
        pending = OutboxEvent.objects.filter(order_id__in=ids, published_at__isnull=True)
        assert pending.count() == 3
    finally:
        dead.stop()
    pipeline.procs["relay"] = relay(pipeline.log_dir)
    assert set(pipeline.wait_terminal(ids).values()) == {"delivered"}
    pipeline.wait_quiet()
