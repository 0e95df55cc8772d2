"""A customer in a real browser: catalog, cart, checkout form, and the live order page."""

from __future__ import annotations

import os
import shutil

import pytest

from orders.models import Order

pytestmark = [
    pytest.mark.browser,
    pytest.mark.pipeline,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which(os.environ.get("CHROMIUM", "chromium")) and not os.path.exists("/usr/bin/chromium"),
        reason="needs Chromium (apt-get install chromium)",
    ),
]


def checkout(page, live_server, card: str) -> None:
    page.goto(live_server.url + "/")
    page.get_by_role("listitem").filter(has_text="Product 2").get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Cart (1)").click()
    page.get_by_role("link", name="Check out").click()
    page.fill("#id_email", "ada@example.com")
    page.fill("#id_name", "Ada Lovelace")
    page.fill("#id_line1", "12 Analytical St")
    page.fill("#id_city", "London")
    page.fill("#id_postal_code", "N1 9GU")
    page.fill("#id_card_number", card)
    page.get_by_role("button", name="Place order").click()


def test_an_order_placed_in_the_browser_is_delivered_live(page, live_server, pipeline):
    checkout(page, live_server, "4242 4242 4242 4242")

    page.wait_for_url("**/orders/*")
    page.locator("#status", has_text="delivered").wait_for(timeout=30_000)
    timeline = page.locator("#timeline").inner_text()
    for step in (
        "We received your order",
        "Payment authorised",
        "Order checks complete",
        "Your items are reserved",
        "shipping label",
        "Delivered",
    ):
        assert step in timeline
    public_id = page.url.rsplit("/", 1)[1]
    assert Order.objects.get(public_id=public_id).status == "delivered"


def test_a_declined_card_shows_the_cancellation_and_another_card_delivers(page, live_server, pipeline):
    checkout(page, live_server, "4000 0000 0000 0002")

    page.locator("#status", has_text="cancelled").wait_for(timeout=30_000)
    assert "card was declined" in page.locator("#reason").inner_text()
    assert page.locator("#headline").inner_text() == "Cancelled: your card was declined. Nothing was charged."
    assert "confirmed" not in page.locator("#live").inner_text()
    declined = page.url.rsplit("/", 1)[1]

    page.get_by_role("button", name="Try again with another card").click()
    page.wait_for_url("**/checkout")
    assert page.input_value("#id_email") == "ada@example.com"  # the same address, the same lines
    page.get_by_role("button", name="4242 4242 4242 4242").click()
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url("**/orders/*")
    page.locator("#status", has_text="delivered").wait_for(timeout=30_000)
    retried = page.url.rsplit("/", 1)[1]
    assert retried != declined
    assert Order.objects.get(public_id=declined).status == "cancelled"
    assert [(li.sku, li.quantity) for li in Order.objects.get(public_id=retried).lines.all()] == [("SKU-2", 1)]


def test_a_bad_card_number_is_a_form_error_and_no_order(page, live_server, catalog):
    checkout(page, live_server, "4242 4242 4242 4241")

    assert "/checkout" in page.url
    assert "checksum" in page.content()
    assert Order.objects.count() == 0
