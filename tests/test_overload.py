"""Overload through the real web server: 201 or 503 with Retry-After, never 500, and every 201 kept.

granian runs with a pool of 2 connections per worker and 8 threads. The test holds a SHARE lock
on the orders table (what a long migration or a bulk job does to a shop), so checkouts block at
their INSERT, inside their transaction, until the statement timeout cancels them; the threads
behind them wait for the pool until its timeout: every checkout then is a 503, and so is a catalog
page that finds no connection. Then the lock goes and checkouts succeed (or, past the pool, 503).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.fixtures import order_body
from tests.harness import db_url, web_server

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

CLIENTS = 10
EACH = 3  # requests per client in each phase


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web(catalog, tmp_path):
    with web_server(
        tmp_path,
        free_port(),
        threads=8,
        DATABASE_POOL_MIN="1",
        DATABASE_POOL_MAX="2",
        DATABASE_POOL_TIMEOUT="0.5",
        DATABASE_STATEMENT_TIMEOUT="1.5",
    ) as running:
        yield running


@dataclass
class Answer:
    key: str
    email: str
    status: int
    retry_after: str | None
    content_type: str
    body: str


def _checkouts(url: str) -> list[Answer]:
    answers = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(EACH):
            key, email = uuid.uuid4().hex, f"{uuid.uuid4().hex[:12]}@example.com"
            r = client.post("/api/orders", json=order_body(email=email), headers={"Idempotency-Key": key})
            answers.append(Answer(key, email, r.status_code, r.headers.get("Retry-After"), r.headers["content-type"], r.text))
    return answers


def _pages(url: str) -> list[Answer]:
    answers = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(EACH * 2):
            r = client.get("/")
            answers.append(Answer("", "", r.status_code, r.headers.get("Retry-After"), r.headers["content-type"], ""))
            time.sleep(0.1)
    return answers


def _phase(url: str, pages: bool = False) -> tuple[list[Answer], list[Answer]]:
    """CLIENTS clients placing EACH orders one after the other, and one loading the catalog page."""
    with ThreadPoolExecutor(CLIENTS + 1) as pool:
        runs = [pool.submit(_checkouts, url) for _ in range(CLIENTS)]
        page_run = pool.submit(_pages, url) if pages else None
        return [a for run in runs for a in run.result()], page_run.result() if page_run else []


def test_past_its_pool_the_server_answers_201_or_503_and_keeps_every_201(web):
    from orders.models import Order
    from shop.pipeline.models import OutboxEvent
    from shop.storefront.models import IdempotencyKey

    url, proc = web
    with psycopg.connect(db_url()) as lock:  # a transaction, rolled back on leaving
        lock.execute("LOCK TABLE orders_order IN SHARE MODE")  # reads go on, inserts wait
        locked, page_answers = _phase(url, pages=True)
        lock.rollback()
    assert {a.status for a in locked} == {503}, Counter(a.status for a in locked)  # each waited, none hung
    after, _ = _phase(url)
    answers = locked + after

    statuses = {a.status for a in answers}
    assert statuses <= {201, 503}, [a for a in answers if a.status not in (201, 503)][:3]
    assert {201, 503} <= statuses, statuses
    busy = [a for a in answers if a.status == 503]
    assert all(a.retry_after and a.content_type.startswith("application/json") and '"error"' in a.body for a in busy)
    placed = [a for a in answers if a.status == 201]
    orders = {o.email: o.public_id for o in Order.objects.all()}
    assert sorted(orders) == sorted(a.email for a in placed)  # every 201 kept, no 503 wrote an order
    for a in placed:
        assert OutboxEvent.objects.filter(order_id=orders[a.email], kind="order.placed").count() == 1
    assert IdempotencyKey.objects.count() == len(placed)  # nor its Idempotency-Key

    assert {a.status for a in page_answers} <= {200, 503}
    assert any(a.status == 503 and a.retry_after and a.content_type.startswith("text/html") for a in page_answers)
    log = proc.log()
    assert "overloaded: POST /api/orders answered 503" in log and "overloaded: GET / answered 503" in log
    assert "Internal Server Error" not in log  # what Django logs for a 500

    again = httpx.post(
        f"{url}/api/orders", json=order_body(email=busy[0].email), headers={"Idempotency-Key": busy[0].key}, timeout=30
    )
    assert again.status_code == 201, again.text  # the refused request, sent again, goes through
