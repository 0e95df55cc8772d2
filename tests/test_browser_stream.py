"""The order page in Chromium when its stream is refused: it polls the fragment, and goes back to
the stream once one is accepted again (no poll after that); and under the real web server, the
stream resumes from Last-Event-ID after a restart."""

from __future__ import annotations

import os
import shutil

import pytest

from shop.pipeline.models import OutboxEvent
from tests.test_order_stream_server import WebServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("without_shared_pipeline", "order_streams"),
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not shutil.which(os.environ.get("CHROMIUM", "chromium")) and not os.path.exists("/usr/bin/chromium"),
        reason="needs Chromium (apt-get install chromium)",
    ),
]


def add_event(order_id: str, kind: str) -> None:
    OutboxEvent.objects.create(order_id=order_id, kind=kind, payload={}, message=kind)


def test_a_refused_stream_falls_back_to_polling_then_streams_again(page, live_server, shop_api, catalog, settings):
    settings.STREAM_MAX_OPEN = 0  # every stream refused with 503, as past the cap
    order_id = shop_api.place()["id"]
    with page.expect_response(lambda r: "/stream" in r.url) as refused:
        page.goto(f"{live_server.url}/orders/{order_id}")
    assert refused.value.status == 503
    page.wait_for_function("window.orderStream.polls >= 2")
    add_event(order_id, "payment.authorized")
    page.locator("#timeline", has_text="Payment authorised.").wait_for(timeout=10_000)  # polled in
    assert page.evaluate("window.orderStream.messages") == 0

    settings.STREAM_MAX_OPEN = 4
    with page.expect_response(lambda r: "/stream" in r.url and r.status == 200, timeout=30_000):
        pass  # the page tries the stream again after its pause
    polls = page.evaluate("window.orderStream.polls")
    add_event(order_id, "fraud.cleared")
    page.locator("#timeline", has_text="Order checks complete.").wait_for(timeout=10_000)
    page.wait_for_timeout(2500)
    received = page.evaluate("window.orderStream")
    assert received["messages"] >= 1, received
    assert received["polls"] == polls, "the page kept polling beside a working stream"


def test_the_page_resumes_its_stream_after_the_web_server_restarts(page, shop_api, catalog, tmp_path):
    web = WebServer(tmp_path)
    web.start()
    try:
        order_id = shop_api.place()["id"]
        asked: list = []
        page.on("request", lambda request: asked.append(request))
        page.goto(f"{web.url}/orders/{order_id}")
        page.wait_for_function("document.querySelector('#live').dataset.stream && window.orderStream")
        add_event(order_id, "payment.authorized")
        page.locator("#timeline", has_text="Payment authorised.").wait_for(timeout=10_000)
        assert page.evaluate("window.orderStream.messages") == 1
        seen = page.locator(".order-live").get_attribute("data-position")

        web.stop()
        add_event(order_id, "fraud.cleared")  # while the server is down
        web.start()
        page.locator("#timeline", has_text="Order checks complete.").wait_for(timeout=30_000)
        received = page.evaluate("window.orderStream")
        assert received == {"messages": 2, "polls": 0}, received
        sent = [r.all_headers().get("last-event-id") for r in asked if "/stream" in r.url]
        assert seen in sent, f"no reconnection carried Last-Event-ID {seen}: {sent}"
        assert not [r.url for r in asked if r.url.endswith("/live")]
    finally:
        web.stop()
