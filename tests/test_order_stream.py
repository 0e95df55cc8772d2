"""The order page's stream in process, on the real database: the shared listener's fan-out,
resuming from Last-Event-ID, giving the connection back, the per-process cap, the end."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from orders.models import Order
from shop.local.processes import WEB_STREAMS
from shop.pipeline.models import OutboxEvent
from shop.proof.chaos import database_url
from shop.storefront import order_views, stream
from shop.storefront.order_events import OrderEvents, hub
from shop.storefront.stream import Position

pytestmark = [pytest.mark.usefixtures("without_shared_pipeline", "order_streams"), pytest.mark.timeout(120)]


@pytest.fixture
def listener(transactional_db: None) -> Iterator[OrderEvents]:
    events = OrderEvents()
    yield events
    events.stop()


@pytest.fixture
def short_streams(settings):
    settings.STREAM_LIFETIME_SECONDS = 1.5
    settings.STREAM_KEEPALIVE_SECONDS = 0.5
    return settings


def add_event(order_id: str, kind: str = "payment.authorized") -> int:
    """One committed outbox row, as a worker writes it (the trigger notifies at commit)."""
    return OutboxEvent.objects.create(order_id=order_id, kind=kind, payload={}, message=kind).id


def insert_sql(order_id: str, kind: str) -> tuple[str, tuple]:
    sql = (
        "INSERT INTO shop_outboxevent (event_id, kind, order_id, payload, message, created_at, claimed_by,"
        " publish_attempts, last_error, request_id, target_task, next_attempt_at)"
        " VALUES (%s, %s, %s, '{}', %s, now(), '', 0, '', '', '', now()) RETURNING id"
    )
    return sql, (uuid.uuid4(), kind, order_id, kind)


def messages(response) -> list[dict]:
    """The SSE messages of a finished stream: each with its id and decoded data."""
    found = []
    for block in b"".join(response.streaming_content).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" in fields:
            found.append({"id": fields["id"], "event": fields["event"], **json.loads(fields["data"])})
    return found


def open_stream(client, order_id: str, last: str = ""):
    headers = {"HTTP_LAST_EVENT_ID": last} if last else {}
    return client.get(f"/orders/{order_id}/stream", **headers)


def test_one_notification_wakes_the_streams_of_its_order_only(listener):
    with listener.subscribe("ORDER-A") as a1, listener.subscribe("ORDER-A") as a2, listener.subscribe("ORDER-B") as b:
        assert listener.listening.is_set() and listener.open_streams() == 3
        for woken in (a1, a2, b):
            woken.clear()  # the wake-up every stream gets when the listener (re)connects
        add_event("ORDER-A")
        assert a1.wait(5) and a2.wait(5)
        assert not b.wait(0.5), "a stream of another order was woken"
        a1.clear(), a2.clear()
        add_event("ORDER-B")
        assert b.wait(5) and not a1.wait(0.5) and not a2.is_set()
    assert listener.open_streams() == 0
    assert listener.connects == 1, "one connection for every stream of the process"


def test_the_listener_reconnects_and_wakes_every_stream(listener):
    with listener.subscribe("ORDER-A") as woken:
        woken.clear()
        with psycopg.connect(database_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'shop-web-listener'")
        assert woken.wait(15), "no wake-up after the reconnection: a notification lost meanwhile would stay lost"
        assert listener.connects >= 2 and listener.listening.wait(5)
        woken.clear()
        add_event("ORDER-A")
        assert woken.wait(5)


def test_last_event_id_resumes_without_repeating_or_losing(client, shop_api, catalog, short_streams):
    order_id = shop_api.place()["id"]
    (first,) = messages(open_stream(client, order_id))
    assert first["event"] == "journey" and not first["settled"] and first["status"] == "placed"
    assert Position.parse(first["id"]).count == 1

    assert messages(open_stream(client, order_id, first["id"])) == [], "nothing new: nothing sent again"

    add_event(order_id, "payment.authorized")
    add_event(order_id, "fraud.cleared")
    (resumed,) = messages(open_stream(client, order_id, first["id"]))
    assert Position.parse(resumed["id"]).count == 3
    assert "Payment authorised." in resumed["html"] and "Order checks complete." in resumed["html"]
    assert messages(open_stream(client, order_id, resumed["id"])) == []


def test_a_row_committed_late_under_a_lower_id_is_not_skipped(client, shop_api, catalog, short_streams):
    order_id = shop_api.place()["id"]
    with psycopg.connect(database_url()) as slow, psycopg.connect(database_url(), autocommit=True) as fast:
        low = slow.execute(*insert_sql(order_id, "stock.reserved")).fetchone()[0]  # not committed yet
        high = fast.execute(*insert_sql(order_id, "payment.authorized")).fetchone()[0]
        assert low < high
        (seen,) = messages(open_stream(client, order_id))
        assert Position.parse(seen["id"]) == Position(high, 2, 0)
        slow.commit()
    (late,) = messages(open_stream(client, order_id, seen["id"]))
    assert Position.parse(late["id"]) == Position(high, 3, 0) and "Your items are reserved." in late["html"]


def test_a_change_is_pushed_to_an_open_stream_which_holds_no_connection(client, shop_api, catalog, settings):
    settings.STREAM_LIFETIME_SECONDS = 20
    order_id = shop_api.place()["id"]
    response = open_stream(client, order_id)
    chunks = iter(response.streaming_content)
    assert next(chunks).startswith(b"retry:")
    assert b"id: " in next(chunks)
    assert connection.connection is None, "the stream kept its database connection after reading"

    add_event(order_id, "payment.authorized")
    started = time.monotonic()
    pushed = next(chunk for chunk in chunks if chunk.startswith(b"id: "))
    assert time.monotonic() - started < 3 and b"Payment authorised." in pushed
    assert connection.connection is None
    assert stream.slots.open == 1 and hub.open_streams() == 1
    response.close()
    assert stream.slots.open == 0 and hub.open_streams() == 0, "a closed stream gave back its slot and subscription"


def test_past_the_cap_a_stream_is_refused_with_503_and_retry_after(client, shop_api, catalog, settings):
    settings.STREAM_MAX_OPEN = 2
    order_id = shop_api.place()["id"]
    held = [open_stream(client, order_id) for _ in range(2)]
    assert all(r.status_code == 200 for r in held)
    refused = open_stream(client, order_id)
    assert refused.status_code == 503 and int(refused["Retry-After"]) > 0
    held[0].close()
    again = open_stream(client, order_id)
    assert again.status_code == 200
    for response in (again, held[1]):
        response.close()
    assert stream.slots.open == 0


def test_a_settled_order_ends_its_stream_then_answers_204(client, shop_api, catalog, settings):
    settings.STREAM_LIFETIME_SECONDS = 60
    order_id = shop_api.place()["id"]
    Order.objects.filter(public_id=order_id).update(status="delivered")
    add_event(order_id, "order.delivered")
    started = time.monotonic()
    (last,) = messages(open_stream(client, order_id))
    assert last["settled"] and time.monotonic() - started < 5, "a settled order's stream ends at once"
    assert open_stream(client, order_id, last["id"]).status_code == 204  # EventSource stops asking
    assert stream.slots.open == 0


def test_a_delivery_committed_between_the_reads_of_one_snapshot_is_not_half_shown(
    client, shop_api, catalog, settings, monkeypatch
):
    """The order row and its timeline are read in one snapshot. Read one statement at a time, a
    delivery committed between them gave the page the delivery's position with the shipped state;
    the stream then had nothing new to send at that position, and the page fell back to polling."""
    settings.STREAM_LIFETIME_SECONDS = 10
    order_id = shop_api.place()["id"]
    read_timeline = order_views.order_timeline

    def deliver_then_read(public_id: str):
        monkeypatch.setattr(order_views, "order_timeline", read_timeline)
        with psycopg.connect(database_url()) as other:  # one transaction, committed on leaving
            other.execute("UPDATE orders_order SET status = 'delivered' WHERE public_id = %s", (order_id,))
            other.execute(*insert_sql(order_id, "order.delivered"))
        return read_timeline(public_id)

    monkeypatch.setattr(order_views, "order_timeline", deliver_then_read)
    shown = messages(open_stream(client, order_id))
    assert [(Position.parse(m["id"]).count, m["settled"]) for m in shown] == [(1, False), (2, True)]


def test_bad_input_is_a_4xx(client, shop_api, catalog):
    order_id = shop_api.place()["id"]
    bad = open_stream(client, order_id, "yesterday")
    assert bad.status_code == 400 and b"Last-Event-ID" in bad.content
    assert client.get("/orders/NOPE/stream").status_code == 404
    assert client.post(f"/orders/{order_id}/stream").status_code == 405
    assert stream.slots.open == 0


def test_the_stream_threads_match_the_cap():
    assert stream.MAX_OPEN == WEB_STREAMS


def test_a_payment_tried_again_wakes_its_streams_and_moves_the_position(listener, client, shop_api, catalog, short_streams):
    from orders.payments.models import Payment

    order_id = shop_api.place()["id"]
    payment = Payment.objects.create(order_id=order_id, amount="10.00", currency="GBP", card_token="tok", attempts=1)
    (before,) = messages(open_stream(client, order_id))
    with listener.subscribe(order_id) as woken:
        woken.clear()
        Payment.objects.filter(pk=payment.pk).update(status="authorizing")  # attempts unchanged: no wake-up
        assert not woken.wait(0.5)
        Payment.objects.filter(pk=payment.pk).update(attempts=2)  # a retry writes no outbox row
        assert woken.wait(5)
    (after,) = messages(open_stream(client, order_id, before["id"]))
    assert Position.parse(after["id"]) == Position(Position.parse(before["id"]).last_id, 1, 2)


def test_a_read_that_fails_ends_the_stream_and_gives_everything_back(listener, shop_api, catalog, settings):
    from psycopg_pool import PoolTimeout

    from shop.storefront.order_views import _snapshot

    order_id = shop_api.place()["id"]
    reads = iter([lambda: _snapshot(order_id, "t" * 32), PoolTimeout])

    def read() -> stream.Snapshot:
        step = next(reads)
        if step is PoolTimeout:
            raise PoolTimeout("no connection in time")
        return step()

    assert stream.slots.take(1)
    events = stream.EventStream(order_id, read, since=None, hub=listener, limits=stream.Limits(1, 30, 10))
    chunks = iter(events)
    next(chunks), next(chunks)  # retry, then the first snapshot
    add_event(order_id)
    assert list(chunks) == [], "the stream ended at the failed read"
    events.close()
    assert stream.slots.open == 0 and listener.open_streams() == 0


def test_a_burst_of_news_reads_a_few_streams_at_a_time_and_every_stream_gets_it(
    listener, shop_api, catalog, settings, monkeypatch
):
    """The orders of open pages move through the queues together, so one notification can wake
    every stream of a process at once: only STREAM_READS_AT_ONCE of them read at a time (the
    rest wait without a connection), and none misses the news."""
    import threading

    from shop.storefront.order_views import _snapshot

    settings.STREAM_READS_AT_ONCE = 2
    monkeypatch.setattr(stream, "readers", stream.Readers())
    order_id = shop_api.place()["id"]
    reading, most, lock = [0], [0], threading.Lock()

    def read() -> stream.Snapshot:
        with lock:
            reading[0] += 1
            most[0] = max(most[0], reading[0])
        try:
            time.sleep(0.05)
            return _snapshot(order_id, "t" * 32)
        finally:
            with lock:
                reading[0] -= 1

    streams = [stream.EventStream(order_id, read, since=None, hub=listener, limits=stream.Limits(20, 30, 10)) for _ in range(12)]
    most[0] = 0  # the first reads ran one by one, in the requests that opened the streams
    received: list[list[bytes]] = [[] for _ in streams]

    def follow(events: stream.EventStream, into: list[bytes]) -> None:
        for chunk in events:
            into.append(chunk)
            if len(into) == 3:  # retry, the first snapshot, the news
                return

    threads = [threading.Thread(target=follow, args=pair) for pair in zip(streams, received, strict=True)]
    for thread in threads:
        thread.start()
    add_event(order_id)
    for thread in threads:
        thread.join(20)
    for events in streams:
        events.close()
    assert all(len(chunks) == 3 and chunks[2].startswith(b"id: ") for chunks in received), received
    assert most[0] == 2
