"""A customer in a real browser: two products into the cart, a quantity changed, a line removed,
checked out, and the order page's journey watched from "in progress" to delivered, pushed by
the page's stream (no poll while it works).

Saves the README's screenshots under docs/img/ (desktop and phone width)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from orders.models import Order
from shop.management.commands import seed
from shop.storefront.models import Product

pytestmark = [
    pytest.mark.browser,
    pytest.mark.pipeline,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("order_streams"),
    pytest.mark.skipif(
        not shutil.which(os.environ.get("CHROMIUM", "chromium")) and not os.path.exists("/usr/bin/chromium"),
        reason="needs Chromium (apt-get install chromium)",
    ),
]

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
PHONE = {"width": 390, "height": 844}


def add_from_catalog(page, name: str) -> None:
    page.get_by_role("listitem").filter(has_text=name).get_by_role("button", name="Add to cart").click()
    page.locator(".flash", has_text=f"Added {name} to your cart").wait_for()


def fill_checkout(page) -> None:
    page.fill("#id_email", "ada@example.com")
    page.fill("#id_name", "Ada Lovelace")
    page.fill("#id_line1", "12 Analytical St")
    page.fill("#id_city", "London")
    page.fill("#id_postal_code", "N1 9GU")


def shop_names() -> None:
    """The fixture's products as the seeded catalog names them, so the pictures show what they are."""
    for sku, name, what in (
        ("SKU-1", "Brass Mug", "mug"),
        ("SKU-2", "Copper Lamp", "lamp"),
        ("SKU-3", "Falcon Compass", "compass"),
    ):
        Product.objects.filter(sku=sku).update(name=name, description=f"A fine {what}, made to last.")


def stage(page, key: str):
    return page.locator(f"#journey [data-stage={key}]")


def test_cart_checkout_and_the_journey_to_delivered(page, live_server, pipeline, fault):
    fault("gateway_latency_ms", "1500")  # each gateway call 0.75-2.25 s: the stages can be seen in progress
    shop_names()
    IMG.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/")
    add_from_catalog(page, "Brass Mug")
    add_from_catalog(page, "Copper Lamp")

    page.get_by_role("link", name="Cart (2)").click()
    page.get_by_label("Quantity of Brass Mug").fill("3")
    page.get_by_role("row").filter(has_text="Brass Mug").get_by_role("button", name="Update").click()
    page.locator(".flash", has_text="Brass Mug: quantity changed to 3.").wait_for()
    assert "£50.00" in page.locator("tfoot").inner_text()  # 3 x £10 + £20
    page.screenshot(path=str(IMG / "storefront-cart.png"), full_page=True)
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    page.screenshot(path=str(IMG / "storefront-cart-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Remove Copper Lamp").click()
    page.locator(".flash", has_text="Removed Copper Lamp from your cart.").wait_for()
    assert "£30.00" in page.locator("tfoot").inner_text()

    page.get_by_role("link", name="Check out").click()
    fill_checkout(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url("**/orders/*")

    assert page.locator("#headline").inner_text() == "We have your order. Payment is being checked."
    assert stage(page, "payment").get_attribute("data-state") == "in_progress"
    assert stage(page, "delivered").get_attribute("data-state") == "to_come"
    page.screenshot(path=str(IMG / "order-placed.png"), full_page=True)
    page.locator("#journey [data-stage=capture][data-state=in_progress]").wait_for(timeout=30_000)
    for key in ("payment", "fraud", "stock", "ready"):
        assert stage(page, key).get_attribute("data-state") == "done", key
    assert stage(page, "label").get_attribute("data-state") == "to_come"
    page.screenshot(path=str(IMG / "order-journey.png"), full_page=True)

    page.locator("#status", has_text="delivered").wait_for(timeout=60_000)
    assert page.locator("#headline").inner_text() == "Delivered."
    states = page.locator("#journey [data-stage]").evaluate_all("els => els.map(e => e.dataset.state)")
    assert states == ["done"] * 8
    public_id = page.url.rsplit("/", 1)[1]
    order = Order.objects.get(public_id=public_id)
    assert order.status == "delivered"
    assert [(li.sku, li.quantity) for li in order.lines.all()] == [("SKU-1", 3)]
    received = page.evaluate("window.orderStream")
    assert received["messages"] >= 4 and received["polls"] == 0, received  # each stage pushed, none polled
    assert not [url for url in requested if url.endswith("/live")], "the page polled while its stream worked"
    assert [url for url in requested if "/stream" in url]
    page.screenshot(path=str(IMG / "order-delivered.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.screenshot(path=str(IMG / "order-journey-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"


def test_the_demo_catalog_shows_every_product_with_its_picture(page, live_server, transactional_db):
    """The catalog a newcomer sees after `manage.py demo`: the seed's 48 products, each picture drawn."""
    call_command("seed", "--no-staff", stdout=io.StringIO())
    IMG.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/")
    cards = page.get_by_role("listitem").filter(has=page.get_by_role("button", name="Add to cart"))
    assert cards.count() == Product.objects.filter(active=True).count() == len(seed.ADJECTIVES) * len(seed.NOUNS)
    page.wait_for_function("[...document.images].every(i => i.complete)")
    drawn = page.locator("img").evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert drawn and all(drawn), "a product picture did not load"
    page.screenshot(path=str(IMG / "demo-catalog.png"))


def test_the_checkout_form_at_phone_width(page, live_server, catalog):
    shop_names()
    IMG.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(PHONE)
    page.goto(live_server.url + "/")
    add_from_catalog(page, "Falcon Compass")
    page.goto(live_server.url + "/checkout")
    fill_checkout(page)
    page.fill("#id_card_number", "4242 4242 4242 4241")
    page.fill("#id_exp_year", "2001")
    page.get_by_role("button", name="Place order").click()

    assert page.locator(".field-error").all_inner_texts() == [
        "This card number is not valid (checksum): check the digits.",
        "This card has expired.",
    ]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    page.screenshot(path=str(IMG / "checkout-phone.png"), full_page=True)


def test_a_silent_gateway_shows_its_retries_then_the_cancellation(page, live_server, pipeline, settings):
    page.goto(live_server.url + "/")
    add_from_catalog(page, "Product 1")
    page.goto(live_server.url + "/checkout")
    fill_checkout(page)
    page.get_by_role("button", name="4000 0000 0000 0119").click()  # times out on every attempt
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url("**/orders/*")

    most = settings.PIPELINE_MAX_RETRIES + 1
    retrying = stage(page, "payment").locator(".detail", has_text=f"trying again (attempt 2 of {most})")
    retrying.or_(stage(page, "payment").locator(".detail", has_text=f"(attempt 3 of {most})")).wait_for(timeout=30_000)
    assert stage(page, "payment").get_attribute("data-state") == "in_progress"
    assert "not answering yet" in page.locator("#headline").inner_text()

    page.locator("#status", has_text="cancelled").wait_for(timeout=60_000)
    assert page.locator("#headline").inner_text() == "Cancelled: we could not take the payment. Nothing was charged."
    assert stage(page, "payment").get_attribute("data-state") == "failed"
    page.locator("#compensations .stage", has_text="Card hold released").locator("text=done").wait_for(timeout=30_000)
