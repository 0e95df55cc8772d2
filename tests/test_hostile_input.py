"""Hand-written hostile input, beside the generated kind (test_fuzz.py) and the basic cases
(test_api.py): each gets its exact status with a reason in ``{"error", "fields"}`` and
writes nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from orders.models import Order
from tests.fixtures import counts, new_key, order_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_shared_pipeline")]


def post(client: Client, body: object, key: str | None = None, content_type: str = "application/json"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/api/orders", data, content_type=content_type, **headers)


def with_(path: str, value: object, **kw: object) -> dict:
    """order_body() with one field, at a dotted path, replaced."""
    body = order_body(**kw)
    *parents, leaf = path.split(".")
    node: dict | list = body
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(leaf) if isinstance(node, list) else leaf] = value
    return body


REJECTED = [
    ("quantity-beyond-64-bits", with_("items.0.quantity", 2**70), 422, "items.0.quantity"),
    ("exp-year-beyond-64-bits", with_("card.exp_year", 10**30), 422, "card.exp_year"),
    ("exp-month-2-to-the-64", with_("card.exp_month", 2**64), 422, "card.exp_month"),
    ("quantity-as-float", with_("items.0.quantity", 1.5), 422, "items.0.quantity"),
    ("quantity-as-string", with_("items.0.quantity", "1; DROP TABLE"), 422, "items.0.quantity"),
    (
        "unknown-and-duplicated-sku",
        {
            **order_body(),
            "items": [{"sku": "SKU-1", "quantity": 1}, {"sku": "NOPE", "quantity": 1}, {"sku": "SKU-1", "quantity": 1}],
        },
        422,
        "items.2.sku",
    ),
    ("too-many-lines", {**order_body(), "items": [{"sku": f"S-{i}", "quantity": 1} for i in range(21)]}, 422, "items"),
    ("quantity-over-the-limit", with_("items.0.quantity", 51), 422, "items.0.quantity"),
    ("name-too-long", with_("name", "x" * 101), 422, "name"),
    ("sku-too-long", with_("items.0.sku", "S" * 33), 422, "items.0.sku"),
    ("escape-in-address", with_("address.line1", "12 Analytical St\x1b[2J"), 422, "address.line1"),
    ("newline-in-name", with_("name", "Ada\nLovelace"), 422, "name"),
    ("country-three-letters", with_("address.country", "GBR"), 422, "address.country"),
    ("country-digits", with_("address.country", "G1"), 422, "address.country"),
    ("email-without-domain", with_("email", "ada@"), 422, "email"),
    ("email-with-spaces", with_("email", "ada lovelace@example.com"), 422, "email"),
    ("card-letters", with_("card.number", "4242-4242-4242-ABCD"), 422, "card.number"),
    ("card-too-short", with_("card.number", "4242"), 422, "card.number"),
    ("card-expired", with_("card.exp_year", 2020), 422, "card.exp_year"),
    ("cvc-letters", with_("card.cvc", "12a"), 422, "card.cvc"),
    ("extra-nesting-where-a-string-goes", with_("name", {"first": "Ada"}), 422, "name"),
    ("items-not-a-list", with_("items", {"sku": "SKU-1", "quantity": 1}), 422, "items"),
]


@pytest.mark.parametrize(("body", "status", "field"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_hostile_fields_are_refused_with_the_field_named(client, catalog, body, status, field):
    before = counts()
    response = post(client, body, key=new_key())
    assert response.status_code == status, response.content
    error = response.json()
    assert error["error"] and any(name.startswith(field) for name in error["fields"]), error
    assert counts() == before


@pytest.mark.parametrize(
    "raw",
    ["[]", '"an order"', "null", "1", "true", '[{"email": "a@b.c"}]', "{}"],
    ids=["array", "string", "null", "number", "bool", "array-of-objects", "empty-object"],
)
def test_bodies_that_are_not_an_order_object_are_4xx(client, catalog, raw):
    before = counts()
    response = post(client, raw, key=new_key())
    assert response.status_code in (400, 422), response.content
    assert response.json()["error"]
    assert counts() == before


def test_invalid_utf8_is_400(client, catalog):
    before = counts()
    response = post(client, b'{"email": "\xff\xfe"}')
    assert response.status_code == 400, response.content
    assert response.json()["error"]
    assert counts() == before


@pytest.mark.parametrize("depth", [200, 20_000])
def test_json_nested_too_deeply_is_400(client, catalog, depth):
    before = counts()
    response = post(client, '{"name": ' + "[" * depth + "]" * depth + "}")
    assert response.status_code == 400, response.content
    assert "nested" in response.json()["error"]
    assert counts() == before


def test_unicode_names_and_addresses_are_welcome(client, catalog):
    body = with_("name", "Zoë Ñandú 李雷 Ðorđe")
    body["address"]["city"] = "Zürich"
    response = post(client, body, key=new_key())
    assert response.status_code == 201, response.content
    assert Order.objects.get(public_id=response.json()["id"]).name == "Zoë Ñandú 李雷 Ðorđe"


def test_an_overlong_idempotency_key_is_refused(client, catalog):
    before = counts()
    response = post(client, order_body(), key="k" * 256)
    assert response.status_code == 422, response.content
    assert counts() == before


@pytest.mark.parametrize(
    "order_id",
    ["1", "2", "0", "-1", "..%2F..%2Fetc%2Fpasswd", "%00", "' OR '1'='1", "x" * 10_000],
    ids=["1", "2", "0", "negative", "traversal", "nul", "sql", "10k-chars"],
)
def test_guessed_and_malformed_order_ids_are_404(client, catalog, order_id):
    post(client, order_body(), key=new_key())  # there is an order to find, if ids could be guessed
    response = client.get(f"/api/orders/{order_id}")
    assert response.status_code == 404, response.content
    assert response.json()["error"]


def test_someone_elses_order_is_not_reachable_by_a_near_miss(client, catalog):
    mine = post(client, order_body(email="me@example.com"), key=new_key()).json()["id"]
    theirs = post(client, order_body(email="them@example.com"), key=new_key()).json()["id"]
    assert len(theirs) >= 20  # unguessable: 128 random bits, not a sequence
    for near in (theirs[:-1], theirs + "A", theirs.upper() if theirs.upper() != theirs else theirs.lower(), mine[:-1]):
        response = client.get(f"/api/orders/{near}")
        assert response.status_code == 404, near
    assert client.get(f"/api/orders/{theirs}").json()["id"] == theirs


def test_the_checkout_form_without_its_csrf_token_is_403(catalog):
    browser = Client(enforce_csrf_checks=True)
    browser.post("/cart/add", {"sku": "SKU-1", "quantity": 1})
    before = counts()
    response = browser.post(
        "/checkout",
        {
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "line1": "12 Analytical St",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
            "card_number": "4242424242424242",
            "exp_month": 12,
            "exp_year": 2030,
            "cvc": "123",
        },
    )
    assert response.status_code == 403
    assert counts() == before


@pytest.mark.parametrize("order_id", ["%00", "x" * 500, "..%2Fadmin"], ids=["nul", "long", "traversal"])
def test_the_order_page_answers_404_to_malformed_ids(client, catalog, order_id):
    assert client.get(f"/orders/{order_id}").status_code == 404
