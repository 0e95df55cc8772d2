"""The load of a chaos run: a catalog with a few scarce products, and a patient client placing orders."""

from __future__ import annotations

import random
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx

from shop.proof.chaos.summary import Summary

CARDS = (  # (number, weight): mostly good cards, some declines and gateway timeouts
    ("4242424242424242", 88),
    ("4000000000000002", 6),
    ("4000000000009995", 4),
    ("4000000000000119", 2),
)


def seed_catalog(products: int = 20, stock: int = 400, scarce: int = 3) -> list[str]:
    """Products for the run; a few scarce ones so that some orders race for the last units."""
    from inventory.models import StockItem
    from inventory.services import stock_receive
    from shop.storefront.models import Product

    skus = []
    for i in range(products):
        sku = f"CHAOS-{i + 1:03d}"
        Product.objects.get_or_create(sku=sku, defaults={"name": f"Chaos product {i + 1}", "price": Decimal(5 + i * 3)})
        if not StockItem.objects.filter(sku=sku).exists():
            stock_receive(sku=sku, quantity=5 if i < scarce else stock)
        skus.append(sku)
    return skus


def _order_body(rng: random.Random, skus: list[str], n: int, run_id: str) -> dict[str, Any]:
    numbers, weights = zip(*CARDS, strict=True)
    lines = rng.sample(skus, rng.choice((1, 1, 1, 2)))
    return {
        "email": f"chaos-{run_id}-{n}@example.com",  # one email per order: the velocity rule stays quiet
        "name": f"Chaos customer {n}",
        "address": {"line1": f"{n} Chaos Lane", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
        "items": [{"sku": sku, "quantity": rng.choice((1, 1, 2))} for sku in lines],
        "card": {"number": rng.choices(numbers, weights)[0], "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    }


class Load:
    """Places orders through the HTTP API at a steady rate, like a patient client."""

    def __init__(self, base_url: str, summary: Summary, skus: list[str], rng: random.Random, patience: float = 90.0) -> None:
        self.base_url = base_url
        self.summary = summary
        self.skus = skus
        self.rng = rng
        self.patience = patience
        self.run_id = uuid.uuid4().hex[:8]
        self.lock = threading.Lock()

    def place_one(self, client: httpx.Client, n: int, body: dict[str, Any]) -> None:
        key = f"chaos-{self.run_id}-{n}"
        deadline = time.monotonic() + self.patience
        while True:
            try:
                response = client.post("/api/orders", json=body, headers={"Idempotency-Key": key})
                if response.status_code == 201:
                    with self.lock:
                        self.summary.placed.append(response.json()["id"])
                    return
                if 400 <= response.status_code < 500:
                    with self.lock:
                        self.summary.rejected += 1
                    return
            except httpx.HTTPError:
                pass
            with self.lock:
                self.summary.client_retries += 1
            if time.monotonic() > deadline:
                with self.lock:
                    self.summary.unconfirmed += 1
                return
            time.sleep(0.5)

    def run(self, count: int, rate: float) -> None:
        bodies = [_order_body(self.rng, self.skus, n, self.run_id) for n in range(count)]
        threads: list[threading.Thread] = []
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            start = time.monotonic()
            for n, body in enumerate(bodies):
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                thread = threading.Thread(target=self.place_one, args=(client, n, body), daemon=True)
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join(self.patience + 30)
