"""No card secret in the idempotency record; no repository secret that lets the app start."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings

from orders.models import Order
from shop.storefront.models import IdempotencyKey
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
    from shop.storefront.checkout import request_fingerprint

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
    # The migration reads the model as it was then (``shop.IdempotencyKey``, now the storefront's).
    then = MigrationLoader(connection).project_state(("orders", "0002_scrub_idempotency_fingerprints")).apps
    migration.erase_plain_hashes(then, None)
    assert IdempotencyKey.objects.get(key=key).request_hash == ""
    again = post(client, card_body(), key)
    assert again.status_code == 422, again.content
    assert "new key" in again.json()["error"]
    assert Order.objects.count() == 1
    assert first.status_code == 201


SERVICE_ENV = {"DATABASE_URL": "postgres://nobody@127.0.0.1:9/none", "CELERY_BROKER_URL": "amqp://nobody@127.0.0.1:9//"}


def run_python(
    argv: list[str], env: dict[str, str], drop: tuple[str, ...] = ("SECRET_KEY", "DEBUG")
) -> subprocess.CompletedProcess:
    """A fresh process as an operator would start it (no server is reached: ``check`` needs none)."""
    child = {k: v for k, v in os.environ.items() if k not in drop}
    child.update({**SERVICE_ENV, "DJANGO_SETTINGS_MODULE": "shop.settings", **env})
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=child, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "secret", ["", "   ", "dev-only-insecure-key-change-me-in-production-0123456789", "change-me-to-a-long-random-string"]
)
def test_the_app_refuses_to_start_with_a_placeholder_or_empty_secret_key(secret, tmp_path):
    result = run_python(["manage.py", "check"], {"SECRET_KEY": secret, "DEBUG": "0", "SHOP_STATE_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr, result.stderr[-2000:]


def test_a_real_secret_key_or_debug_starts(tmp_path):
    good = run_python(["manage.py", "check"], {"SECRET_KEY": "k" + os.urandom(24).hex(), "SHOP_STATE_DIR": str(tmp_path)})
    assert good.returncode == 0, good.stderr[-2000:]
    debug = run_python(["manage.py", "check"], {"SECRET_KEY": "", "DEBUG": "1", "SHOP_STATE_DIR": str(tmp_path)})
    assert debug.returncode == 0, debug.stderr[-2000:]


def test_a_server_without_secret_key_refuses_while_manage_py_generates_one_per_checkout(tmp_path):
    server = run_python(["-c", "import shop.wsgi"], {"SHOP_STATE_DIR": str(tmp_path)})
    assert server.returncode != 0 and "SECRET_KEY" in server.stderr, server.stderr[-2000:]
    first = run_python(["manage.py", "check"], {"SHOP_STATE_DIR": str(tmp_path)})
    assert first.returncode == 0, first.stderr[-2000:]
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text()
    assert len(key) >= 50
    assert run_python(["manage.py", "check"], {"SHOP_STATE_DIR": str(tmp_path)}).returncode == 0
    assert key_file.read_text() == key  # generated once


@pytest.mark.django_db(transaction=True)
def test_seed_never_gives_the_staff_account_the_published_password(monkeypatch):
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from shop.management.commands.seed import DEMO_STAFF

    monkeypatch.delenv("STAFF_PASSWORD", raising=False)
    out = StringIO()
    call_command("seed", stock=1, stdout=out)
    staff = get_user_model().objects.get(username="staff")
    assert not staff.check_password(DEMO_STAFF[1])
    printed = out.getvalue().split("password ", 1)[1].split()[0]
    assert staff.check_password(printed)
    out = StringIO()
    call_command("seed", stock=1, stdout=out)
    assert "password" not in out.getvalue()  # shown once
    staff.delete()
    monkeypatch.setenv("STAFF_PASSWORD", "from-the-operator-env-42")
    call_command("seed", stock=1, stdout=(out := StringIO()))
    assert get_user_model().objects.get(username="staff").check_password("from-the-operator-env-42")
    assert "from-the-operator-env-42" not in out.getvalue()


@pytest.fixture
def switches_set(transactional_db, monkeypatch):
    """A gateway outage switched on both ways: a FaultSetting row and a FAULT_* variable."""
    from shop.pipeline import faults
    from shop.pipeline.models import FaultSetting

    FaultSetting.objects.create(name="gateway_failure_rate", value="1")
    monkeypatch.setenv("FAULT_GATEWAY_TIMEOUT_RATE", "1")
    faults.clear_cache()
    yield faults
    faults.clear_cache()


def authorize_once() -> None:
    from decimal import Decimal

    from orders.payments import gateway

    token = gateway.tokenize(CARD)
    gateway.authorize(key=new_key(), reference="ref", token=token.token, amount=Decimal("1.00"))


def test_fault_switches_have_no_effect_when_faults_are_off(switches_set):
    with override_settings(FAULTS_ENABLED=False):
        switches_set.clear_cache()
        assert switches_set.get_float("gateway_failure_rate") == 0
        assert switches_set.get_float("gateway_timeout_rate") == 0
        authorize_once()  # neither the row nor the variable makes the gateway fail
    from orders.payments.gateway import GatewayUnavailable

    with override_settings(FAULTS_ENABLED=True):
        switches_set.clear_cache()
        assert switches_set.get_float("gateway_failure_rate") == 1
        with pytest.raises(GatewayUnavailable):
            authorize_once()


def test_the_admin_refuses_fault_switch_changes_when_faults_are_off(switches_set, admin_client):
    from shop.pipeline.models import FaultSetting

    row = FaultSetting.objects.get()
    with override_settings(FAULTS_ENABLED=False):
        assert admin_client.get("/admin/pipeline/faultsetting/add/").status_code == 403
        response = admin_client.post(f"/admin/pipeline/faultsetting/{row.pk}/change/", {"name": row.name, "value": "0.5"})
        assert response.status_code == 403
        assert admin_client.post("/admin/pipeline/faultsetting/add/", {"name": "crash_order", "value": "x"}).status_code == 403
        assert "Fault switches are off" in admin_client.get("/admin/pipeline/faultsetting/", follow=True).content.decode()
    assert list(FaultSetting.objects.values_list("name", "value")) == [("gateway_failure_rate", "1")]
    with override_settings(FAULTS_ENABLED=True):
        response = admin_client.post("/admin/pipeline/faultsetting/add/", {"name": "crash_order", "value": "x"})
        assert response.status_code == 302
    assert FaultSetting.objects.filter(name="crash_order").exists()
