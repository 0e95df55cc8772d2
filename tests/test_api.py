"""The HTTP API without workers: validation, idempotency keys, and that bad input writes nothing."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection

from orders.models import Order
from tests.fixtures import counts, new_key, order_body

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, body, key=None, content_type="application/json"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/orders", data, content_type=content_type, **headers)


def test_products_list_the_catalog_with_stock(client, catalog):
    products = {p["sku"]: p for p in client.get("/api/products").json()}
    assert products["SKU-2"] == {"sku": "SKU-2", "name": "Product 2", "price": "20.00", "currency": "GBP", "stock": 5}


def test_order_is_confirmed_at_once_with_its_links(client, catalog):
    response = post(client, order_body(), key=new_key())
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "placed"
    assert body["url"].endswith(f"/orders/{body['id']}")
    status = client.get(f"/api/orders/{body['id']}").json()
    assert [e["kind"] for e in status["timeline"]] == ["order.placed"]
    order = Order.objects.get(public_id=body["id"])
    assert (order.card_brand, order.card_last4) == ("visa", "4242")
    assert order.card_token.startswith("tok_")


def test_card_number_is_never_stored(client, catalog):
    post(client, order_body(card="4000056655665556"), key=new_key())
    with connection.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb')"
        )
        for table, column in cur.fetchall():
            cur.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s', ["%4000056655665556%"])
            assert cur.fetchone()[0] == 0, f"card number found in {table}.{column}"


def test_same_idempotency_key_and_body_returns_the_same_order(client, catalog):
    key = new_key()
    first, second = post(client, order_body(), key=key), post(client, order_body(), key=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert Order.objects.count() == 1


def test_same_idempotency_key_with_another_body_is_422(client, catalog):
    key = new_key()
    post(client, order_body(), key=key)
    before = counts()
    response = post(client, order_body(quantity=2), key=key)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["fields"]
    assert counts() == before


def test_concurrent_requests_with_one_key_create_one_order(catalog, live_server):
    import httpx

    key, results = new_key(), []

    def send() -> None:
        results.append(
            httpx.post(f"{live_server.url}/api/orders", json=order_body(), headers={"Idempotency-Key": key}, timeout=30)
        )

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (order_body(sku="NOPE"), 422, "items.0.sku"),
        (order_body(quantity=0), 422, "items.0.quantity"),
        (order_body(quantity=-1), 422, "items.0.quantity"),
        (order_body(quantity=10**30), 422, "items.0.quantity"),
        (order_body(sku="SKU-3", quantity=2), 422, "items.0.quantity"),
        (order_body(card="4242424242424241"), 422, "card.number"),
        (order_body(email="not-an-email"), 422, "email"),
        ({**order_body(), "items": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-1", "quantity": 1}]}, 422, "items.1.sku"),
        ({k: v for k, v in order_body().items() if k != "address"}, 422, "address"),
        ({**order_body(), "name": "Ada\x00Lovelace"}, 422, "name"),
    ],
    ids=[
        "unknown-sku",
        "zero",
        "negative",
        "huge",
        "more-than-stock",
        "luhn",
        "email",
        "duplicate-sku",
        "missing-field",
        "control-char",
    ],
)
def test_bad_orders_get_a_clear_4xx_and_write_nothing(client, catalog, body, status, field):
    before = counts()
    response = post(client, body, key=new_key())
    assert response.status_code == status, response.content
    error = response.json()
    assert error["error"]
    assert any(name.startswith(field) for name in error["fields"]), error
    assert counts() == before


def test_malformed_json_is_400(client, catalog):
    before = counts()
    response = post(client, '{"email": ', key=new_key())
    assert response.status_code == 400
    assert response.json()["error"]
    assert counts() == before


def test_unknown_order_is_404(client, catalog):
    assert client.get("/api/orders/nope").status_code == 404
    assert client.get("/api/orders/1").status_code == 404


def test_oversized_body_is_413(client, catalog):
    before = counts()
    response = post(client, json.dumps({**order_body(), "name": "x" * 100_000}), key=new_key())
    assert response.status_code == 413
    assert counts() == before


def test_body_that_is_not_json_is_415(client, catalog):
    response = post(client, "email=a@b.c", key=new_key(), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"]
