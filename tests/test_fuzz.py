"""The HTTP API fuzzed from its own OpenAPI schema: no 5xx, no undeclared response, and a
rejected request changes nothing.

schemathesis generates requests from ``/api/openapi.json`` (valid ones and, in its
negative mode, ones that break the schema on purpose) and sends them to the real
application on the real database. Each response must be below 500 and conform to the
schema (status code declared, content type, body); after every 4xx the counts of
orders, lines, outbox rows, idempotency keys and stock are unchanged.

The suite runs a fixed seed and ``FUZZ_EXAMPLES`` examples per operation and mode
(60 by default); the README gives the longer run's command and figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup, ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures import counts

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("without_shared_pipeline"),
]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
SEED = int(os.environ.get("FUZZ_SEED", "20261125"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Negative mode needs something that can be invalid: GET /api/products takes no input, and any
# string is a well-formed order id (an unknown one is a 404), so both run in positive mode only.
RUNS = [
    ("/api/products", "GET", GenerationMode.POSITIVE),
    ("/api/orders", "POST", GenerationMode.POSITIVE),
    ("/api/orders", "POST", GenerationMode.NEGATIVE),
    ("/api/orders/{order_id}", "GET", GenerationMode.POSITIVE),
    ("/api/checkout/sync", "POST", GenerationMode.POSITIVE),
    ("/api/checkout/sync", "POST", GenerationMode.NEGATIVE),
]


def api_schema() -> Any:
    from shop.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/openapi.json", application)


def fuzz(path: str, method: str, mode: GenerationMode, examples: int, stats: Counter) -> None:
    """Send ``examples`` generated requests to one operation; raise on the first failure."""
    operation = api_schema()[path][method]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @seed(SEED)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        before = counts()
        response = case.call()
        stats["cases"] += 1
        stats[f"status {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)
        if 400 <= response.status_code < 500:
            assert counts() == before, f"a rejected request ({response.status_code}) changed the database"

    run()


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Counter]]:
    """Collect each operation's figures; print them at the end and write them as JSON if asked."""
    collected: dict[str, Counter] = {}
    started = time.monotonic()
    yield collected
    total = sum(c["cases"] for c in collected.values())
    failures = sum(c.pop("failed", 0) for c in collected.values())
    lines = [f"fuzz: {total} generated requests (seed {SEED}, {EXAMPLES} examples per operation and mode), {failures} failed"]
    lines += [f"  {name}: {dict(sorted(c.items()))}" for name, c in collected.items()]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + "\n".join(lines))
    if report := os.environ.get("FUZZ_REPORT"):
        data = {
            "seed": SEED,
            "examples_per_operation_and_mode": EXAMPLES,
            "requests": total,
            "failed_operations": failures,
            "seconds": round(time.monotonic() - started, 1),
            "by_operation": {name: dict(c) for name, c in collected.items()},
        }
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(data, indent=2) + "\n")


@pytest.mark.parametrize(("path", "method", "mode"), RUNS, ids=[f"{m} {p} {g.value}" for p, m, g in RUNS])
def test_generated_requests_get_a_declared_answer_and_rejected_ones_write_nothing(catalog, figures, settings, path, method, mode):
    from inventory.services import stock_receive
    from shop.storefront.api import EXAMPLE_ORDER
    from shop.storefront.models import Product

    settings.SYNC_CHECKOUT_ENABLED = True  # the synchronous checkout is fuzzed where it is on; off it is a 404
    # The schema's example order names a product of the demo catalog: stock it, so it is accepted.
    sku = EXAMPLE_ORDER["items"][0]["sku"]
    Product.objects.create(sku=sku, name="Analytical Notebook", price="5.99", currency="GBP")
    stock_receive(sku=sku, quantity=1000)
    stats: Counter = Counter()
    try:
        fuzz(path, method, mode, EXAMPLES, stats)
    except BaseException:
        stats["failed"] = 1
        raise
    finally:
        figures[f"{method} {path} ({mode.value})"] = stats
    assert stats["cases"] > 0


def test_the_fuzzer_finds_a_bug_seeded_in_a_validator(catalog, monkeypatch):
    """An unhandled exception in a validator, for names over 10 characters: the fuzz run must fail."""
    from shop.storefront import checkout

    original = checkout.clean_contact

    def buggy(req: checkout.CheckoutRequest) -> None:
        if len(req.name) > 10:
            raise KeyError("name")  # the kind of slip that ends in a 500
        original(req)

    monkeypatch.setattr(checkout, "clean_contact", buggy)
    stats: Counter = Counter()
    with pytest.raises(FailureGroup) as found:
        fuzz("/api/orders", "POST", GenerationMode.POSITIVE, 60, stats)
    assert any(isinstance(e, ServerError) for e in found.value.exceptions)
    assert stats["status 500"] >= 1
