"""The storefront's pages: product page, cart (change a quantity, remove a line), checkout's form
errors (a stock shortage names the product and what is left), and the order page's honest words."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from orders.models import Order
from orders.payments.models import Payment
from shop.pipeline.models import OutboxEvent
from tests.fixtures import CARD_OK, order_body

# The tests set an order's state by hand: no shared pipeline may move the order meanwhile.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]

FORM = {
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "line1": "12 Analytical St",
    "city": "London",
    "postal_code": "N1 9GU",
    "country": "GB",
    "card_number": "4242 4242 4242 4242",
    "exp_month": 12,
    "exp_year": 2030,
    "cvc": "123",
    "idempotency_key": "k" * 32,
}


def text(response) -> str:
    """The page's words, tags removed, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def add(client: Client, sku: str, quantity: int = 1):
    return client.post("/cart/add", {"sku": sku, "quantity": quantity}, follow=True)


def test_the_catalog_shows_a_picture_and_links_each_product_to_its_page(client, catalog):
    page = client.get("/").content.decode()

    assert page.count('src="/static/shop/products/') == 3
    assert 'href="/products/SKU-2"' in page


def test_the_product_page_shows_price_stock_and_adds_to_the_cart_by_name(client, catalog):
    page = client.get("/products/SKU-2")
    assert page.status_code == 200
    assert "Product 2" in text(page) and "£20.00" in text(page) and "5 in stock" in text(page)

    added = client.post("/cart/add", {"sku": "SKU-2", "quantity": 2, "next": "/products/SKU-2"}, follow=True)

    assert added.redirect_chain[-1][0] == "/products/SKU-2"
    assert "Added Product 2 to your cart (2 in the cart)." in text(added)
    assert "SKU-2 to your cart" not in text(added)
    assert client.get("/products/NOPE").status_code == 404


def test_the_cart_changes_a_quantity_removes_a_line_and_totals_with_the_currency(client, catalog):
    add(client, "SKU-1")
    add(client, "SKU-2")

    changed = client.post("/cart/update", {"sku": "SKU-1", "quantity": 3}, follow=True)
    assert "Product 1: quantity changed to 3." in text(changed)
    assert "Total (GBP) £50.00" in text(changed)  # 3 x £10 + £20

    removed = client.post("/cart/update", {"sku": "SKU-2", "quantity": 3, "remove": "1"}, follow=True)
    assert "Removed Product 2 from your cart." in text(removed)
    assert "Total (GBP) £30.00" in text(removed)
    assert "Cart (3)" in text(removed)


def test_a_bad_quantity_in_the_cart_is_an_error_not_a_change(client, catalog):
    add(client, "SKU-1")

    response = client.post("/cart/update", {"sku": "SKU-1", "quantity": -2}, follow=True)

    assert "Enter a quantity from 0 to 50." in text(response)
    assert "Cart (1)" in text(response)


def test_an_off_site_next_is_not_followed(client, catalog):
    response = client.post("/cart/add", {"sku": "SKU-1", "quantity": 1, "next": "https://evil.example/"})

    assert response.status_code == 302 and response["Location"] == "/"


def test_a_stock_shortage_at_checkout_is_a_422_form_error_naming_the_product_and_what_is_left(client, catalog):
    add(client, "SKU-3", 2)  # one left

    response = client.post("/checkout", FORM)

    assert response.status_code == 422
    assert "Only 1 of Product 3 left: change the quantity in your cart." in text(response)
    assert "SKU-3" not in text(response)
    assert Order.objects.count() == 0


def test_every_bad_field_is_reported_once_in_one_pass(client, catalog):
    add(client, "SKU-1")

    response = client.post("/checkout", {**FORM, "card_number": "4242 4242 4242 4241", "exp_year": 2001})

    page = text(response)
    assert response.status_code == 422
    assert page.count("not valid (checksum)") == 1
    assert "This card has expired." in page
    assert Order.objects.count() == 0


def test_a_good_checkout_redirects_to_the_order_page_that_says_payment_is_being_checked(client, catalog):
    add(client, "SKU-1")

    response = client.post("/checkout", FORM, follow=True)

    page = text(response)
    assert "We have your order. Payment is being checked." in page
    assert "confirmed your order" not in page
    assert page.count("to come") == 5 and page.count("in progress") == 3
    assert "Cart (0)" in page


def place(client: Client, **kw) -> str:
    response = client.post("/api/orders", json.dumps(order_body(**kw)), content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_the_live_fragment_says_which_payment_attempt_is_running(client, catalog, settings):
    settings.PIPELINE_MAX_RETRIES = 8
    public_id = place(client)
    Payment.objects.create(order_id=public_id, amount=10, currency="GBP", card_token="t", status="authorizing", attempts=3)

    live = text(client.get(f"/orders/{public_id}/live"))

    assert "the payment provider is not answering, trying again (attempt 3 of 9)" in live


def test_a_review_says_how_long_it_usually_takes(client, catalog, settings):
    settings.FRAUD_REVIEW_DEADLINE_SECONDS = 120
    public_id = place(client)
    Order.objects.filter(public_id=public_id).update(status="review")
    OutboxEvent.objects.create(kind="fraud.review", order_id=public_id, payload={})

    assert "We are checking this order, usually within 2 minutes." in text(client.get(f"/orders/{public_id}"))


def cancel_as_declined(public_id: str) -> None:
    Order.objects.filter(public_id=public_id).update(status="cancelled")
    for kind in ("payment.declined", "order.cancelled"):
        OutboxEvent.objects.create(kind=kind, order_id=public_id, payload={})


def test_a_declined_order_says_nothing_was_charged_and_offers_another_card(client, catalog):
    public_id = place(client, sku="SKU-2", quantity=2, card=CARD_OK)
    cancel_as_declined(public_id)

    page = text(client.get(f"/orders/{public_id}"))
    assert "Cancelled: your card was declined. Nothing was charged." in page
    assert "Try again with another card" in page

    retry = client.post(f"/orders/{public_id}/retry", follow=True)
    assert retry.redirect_chain[-1][0] == "/checkout"
    form = retry.context["form"]
    assert form["email"].value() == "ada@example.com" and form["line1"].value() == "12 Analytical St"
    assert [(line.product.sku, line.quantity) for line in retry.context["lines"]] == [("SKU-2", 2)]


def test_times_have_one_format_on_the_page_and_in_its_updates(client, catalog):
    public_id = place(client)

    first = client.get(f"/orders/{public_id}").content.decode()
    update = client.get(f"/orders/{public_id}/live").content.decode()

    stamp = re.compile(r"<time datetime=\"[^\"]+\">(\d\d:\d\d:\d\d)</time>")
    assert stamp.findall(first) and stamp.findall(first) == stamp.findall(update)


def test_the_api_gives_the_same_headline_and_journey_as_the_page(client, catalog):
    public_id = place(client)

    body = client.get(f"/api/orders/{public_id}").json()

    assert body["headline"] == "We have your order. Payment is being checked."
    assert [(s["stage"], s["state"]) for s in body["journey"][:4]] == [
        ("payment", "in_progress"),
        ("fraud", "in_progress"),
        ("stock", "in_progress"),
        ("ready", "to_come"),
    ]


def test_the_demo_domain_is_named_on_the_checkout_form_only_where_it_is_set(client, catalog, settings):
    add(client, "SKU-1")
    settings.FRAUD_VELOCITY_EXEMPT_DOMAINS = []
    assert "you can try them all in a row" not in text(client.get("/checkout"))

    settings.FRAUD_VELOCITY_EXEMPT_DOMAINS = ["example.com"]
    assert "With an address at example.com you can try them all in a row." in text(client.get("/checkout"))


def test_the_error_summary_links_each_bad_field_and_repeats_no_message(client, catalog):
    add(client, "SKU-1")

    response = client.post("/checkout", {**FORM, "card_number": "4242 4242 4242 4241", "exp_year": 2001})

    summary = re.search(r'<div class="form-errors" role="alert" id="form-errors">(.*?)</div>', response.content.decode(), re.S)
    assert summary, "a summary, announced, at the top of the form"
    assert '<a href="#id_card_number">Card number</a>, <a href="#id_exp_year">Expiry year</a>.' in summary.group(1)
    assert "checksum" not in summary.group(1), "each message is said once, on its field"
