"""No card secret in the idempotency record; no repository secret that lets the app start."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.test import override_settings

from orders.models import Order
from shop.models import IdempotencyKey
from tests.fixtures import counts, new_key, order_body
from tests.harness import ROOT

CARD = "4000056655665556"
CVC = "987"


def post(client, body, key):
    return client.post("/api/orders", json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


def card_body(**card) -> dict:
    body = order_body(card=CARD)
    body["card"].update({"cvc": CVC, **card})
    return body


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def plain_hashes(body: dict) -> set[str]:
    """What an offline attacker could test guesses against: unkeyed hashes of the number or the body,
    as sent and as the API's schema normalises it (optional fields filled in)."""
    pan = sha256(json.dumps({"n": CARD}, sort_keys=True, separators=(",", ":")))
    digests = {sha256(CARD), pan}
    normalised = {**body, "address": {"line2": "", **body["address"]}}
    for variant in (body, normalised):
        masked = {**variant, "card": {**variant["card"], "number": "*"}, "pan": pan}
        for candidate in (variant, masked):
            digests |= {sha256(json.dumps(candidate, sort_keys=True, separators=(",", ":"))), sha256(json.dumps(candidate))}
    return digests


def text_columns_containing(needle: str) -> list[str]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb')"
        )
        found = []
        for table, column in cur.fetchall():
            cur.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s', [f"%{needle}%"])
            if cur.fetchone()[0]:
                found.append(f"{table}.{column}")
        return found


@pytest.mark.django_db(transaction=True)
def test_the_idempotency_record_holds_no_card_secret_nor_an_unkeyed_hash(client, catalog):
    body = card_body()
    assert post(client, body, new_key()).status_code == 201
    row = IdempotencyKey.objects.get()
    stored = json.dumps({"hash": row.request_hash, "response": row.response, "key": row.key})
    assert "cvc" not in stored
    assert CARD not in stored
    for digest in plain_hashes(body):
        assert digest != row.request_hash
        assert text_columns_containing(digest) == [], digest
    assert text_columns_containing(CARD) == []


@pytest.mark.django_db(transaction=True)
def test_the_fingerprint_ignores_the_cvc_and_the_full_number_and_needs_the_server_key():
    from shop.checkout import request_fingerprint

    body = card_body()
    same = request_fingerprint(body)
    assert request_fingerprint(card_body(cvc="111")) == same  # the CVC is not in it
    assert request_fingerprint(card_body(number="4111 1111 1111 5556")) == same  # only last four and expiry
    assert request_fingerprint(card_body(exp_month=11)) != same
    assert request_fingerprint({**body, "email": "eve@example.com"}) != same
    with override_settings(SECRET_KEY="another-server-key-" + "x" * 40):
        assert request_fingerprint(body) != same  # keyed: useless without SECRET_KEY


@pytest.mark.django_db(transaction=True)
def test_replays_still_replay_and_another_body_is_still_422(client, catalog):
    key = new_key()
    first = post(client, card_body(), key)
    again = post(client, card_body(number="4000 0566 5566 5556"), key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    before = counts()
    other = post(client, card_body(exp_year=2031), key)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["fields"]
    assert counts() == before
    with override_settings(SECRET_KEY="rotated-server-key-" + "y" * 40, SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]):
        assert post(client, card_body(), key).json() == first.json()  # a rotated key still replays
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_old_plain_hashes_are_erased_and_their_keys_refused_without_a_second_order(client, catalog):
    key = new_key()
    first = post(client, card_body(), key)
    IdempotencyKey.objects.filter(key=key).update(request_hash=sha256("an old plain hash"))
    migration = importlib.import_module("orders.migrations.0002_scrub_idempotency_fingerprints")
    migration.erase_plain_hashes(apps, None)
    assert IdempotencyKey.objects.get(key=key).request_hash == ""
    again = post(client, card_body(), key)
    assert again.status_code == 422, again.content
    assert "new key" in again.json()["error"]
    assert Order.objects.count() == 1
    assert first.status_code == 201


def manage_check(**env: str) -> subprocess.CompletedProcess:
    child = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    child.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=child, capture_output=True, text=True, timeout=120
    )
