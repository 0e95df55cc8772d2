"""The JSON API: catalog, checkout, order status. Errors are ``{"error", "fields"}`` with a 4xx.

django-ninja validates the shapes and publishes the OpenAPI schema at
``/api/openapi.json``; every response an endpoint can give is declared there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Field, Header, NinjaAPI, Schema, Status
from ninja.decorators import decorate_view
from ninja.errors import HttpError, ValidationError
from pydantic import ConfigDict

from inventory.models import StockItem
from orders.selectors import order_by_public_id, order_timeline
from shop.storefront import checkout, sync_checkout
from shop.storefront.models import Product
from shop.storefront.overload import overload_response
from shop.storefront.timeline import customer_order_view

api = NinjaAPI(title="Order pipeline API", version="1.0", urls_namespace="api")


class ErrorOut(Schema):
    error: str
    fields: dict[str, str] = {}


class ProductOut(Schema):
    sku: str
    name: str
    price: str
    currency: str
    stock: int


class AddressIn(Schema):
    line1: str = Field(min_length=1, max_length=100)
    line2: str = Field("", max_length=100)
    city: str = Field(min_length=1, max_length=60)
    postal_code: str = Field(min_length=1, max_length=16)
    country: str = Field(pattern=r"^[A-Za-z]{2}$")


class ItemIn(Schema):
    sku: str = Field(min_length=1, max_length=32)
    quantity: int = Field(ge=1, le=checkout.MAX_QUANTITY)


class CardIn(Schema):
    number: str = Field(min_length=12, max_length=23, pattern=r"^[0-9 -]+$")
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvc: str = Field(pattern=r"^[0-9]{3,4}$")


EXAMPLE_ORDER = {
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "address": {"line1": "12 Analytical St", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
    "items": [{"sku": "ANA-NOT-001", "quantity": 1}],
    "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
}


class OrderIn(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ORDER]})

    email: str = Field(min_length=3, max_length=254)
    name: str = Field(min_length=1, max_length=100)
    address: AddressIn
    items: list[ItemIn] = Field(min_length=1, max_length=checkout.MAX_ITEMS)
    card: CardIn


class OrderCreated(Schema):
    id: str
    status: str
    url: str
    status_url: str


class SyncOrderCreated(OrderCreated):
    """The order after its steps ran in the request; ``status`` is still the order's own
    (the orders join moves it on from the events, as for any order)."""

    payment: str = Field(description="authorized, declined, failed or pending")
    fraud: str = Field(description="cleared, review, rejected or pending")
    stock: str = Field(description="reserved, unavailable or pending")
    reason: str | None = Field(description="why the order cannot go ahead, in the customer's words")


class SyncOrderUnfinished(SyncOrderCreated):
    """A step the gateway left unanswered: the order stands and its worker resumes the step."""

    error: str
    fields: dict[str, str] = {}


class LineOut(Schema):
    sku: str
    name: str
    unit_price: str
    quantity: int


class TimelineEntry(Schema):
    at: datetime
    kind: str
    message: str


class JourneyStage(Schema):
    """A stage of the order (``shop/storefront/journey.py``): ``to_come``, ``in_progress``, ``done`` or ``failed``."""

    stage: str
    label: str
    state: str
    detail: str


class OrderOut(Schema):
    id: str
    status: str
    reason: str | None
    total: str
    currency: str
    created_at: datetime
    lines: list[LineOut]
    timeline: list[TimelineEntry]
    headline: str
    journey: list[JourneyStage]


def _error(request: HttpRequest, status: int, message: str, fields: dict[str, str] | None = None) -> HttpResponse:
    return api.create_response(request, {"error": message, "fields": fields or {}}, status=status)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields = {}
    for err in exc.errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "payload")]
        fields[".".join(loc) or "body"] = err.get("msg", "invalid")
    return _error(request, 422, "The request is not valid", fields)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, exc.message)


@api.exception_handler(checkout.CheckoutError)
def _checkout_error(request: HttpRequest, exc: checkout.CheckoutError) -> HttpResponse:
    return _error(request, exc.status, exc.message, exc.fields)


@api.exception_handler(DatabaseError)
def _database_error(request: HttpRequest, exc: DatabaseError) -> HttpResponse:
    """Overload (no connection free in time, a statement past its timeout) is a 503 the client
    may retry; any other database error stays a server error."""
    response = overload_response(request, exc)
    if response is None:
        raise exc
    return response


# Every endpoint can be refused for overload: 503 with Retry-After, nothing written.
BUSY = {503: ErrorOut}


@api.get("/products", response={200: list[ProductOut], **BUSY})
def list_products(request: HttpRequest) -> list[dict]:
    stock = dict(StockItem.objects.values_list("sku", "available"))
    return [
        {"sku": p.sku, "name": p.name, "price": str(p.price), "currency": p.currency, "stock": stock.get(p.sku, 0)}
        for p in Product.objects.filter(active=True)
    ]


def _checkout_request(body: dict) -> checkout.CheckoutRequest:
    return checkout.CheckoutRequest(
        email=body["email"], name=body["name"], address=body["address"], items=body["items"], card=body["card"]
    )


def _links(request: HttpRequest, public_id: str) -> dict[str, str]:
    return {
        "url": request.build_absolute_uri(reverse("order-page", args=[public_id])),
        "status_url": request.build_absolute_uri(reverse("api:get_order", args=[public_id])),
    }


@api.post("/orders", response={201: OrderCreated, 400: ErrorOut, 413: ErrorOut, 415: ErrorOut, 422: ErrorOut, **BUSY})
def create_order(
    request: HttpRequest,
    payload: OrderIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=255),
) -> Status[dict]:
    """Place an order. The same Idempotency-Key with the same body replays the first answer."""
    body = payload.dict()
    # The idempotency record keeps only a keyed fingerprint, without the card number or CVC.
    order, _created = checkout.place(_checkout_request(body), idempotency_key=idempotency_key, fingerprint_of=body)
    return Status(201, {"id": order.public_id, "status": order.status, **_links(request, order.public_id)})


def sync_checkout_enabled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Off, the endpoint is not there: 404 before the body is even read, as for an unknown path."""

    @wraps(view)
    def run(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.SYNC_CHECKOUT_ENABLED:
            return _error(request, 404, "Not found: the synchronous checkout is off here (SYNC_CHECKOUT_ENABLED)")
        return view(request, *args, **kwargs)

    return run


SYNC_RETRY_AFTER_SECONDS = 2


@api.post(
    "/checkout/sync",
    response={
        201: SyncOrderCreated,
        400: ErrorOut,
        404: ErrorOut,
        413: ErrorOut,
        415: ErrorOut,
        422: ErrorOut,
        503: SyncOrderUnfinished,
    },
    summary="Place an order and process it inside the request (a benchmark foil)",
)
@decorate_view(sync_checkout_enabled)
def create_order_sync(
    request: HttpRequest,
    response: HttpResponse,
    payload: OrderIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=255),
) -> Status[dict]:
    """The synchronous checkout: the body of ``POST /api/orders``, answered only once payment is
    authorised (or declined), fraud screened and stock reserved. Off (404) unless
    ``SYNC_CHECKOUT_ENABLED``: the demo and the benchmark turn it on.

    When the payment gateway does not answer, the answer is 503 with the order's id: the order
    stands, its payment is retried in the background, and the same request with the same
    Idempotency-Key resumes it.
    """
    body = payload.dict()
    done = sync_checkout.place(_checkout_request(body), idempotency_key=idempotency_key, fingerprint_of=body)
    order = done.order
    answer = {"id": order.public_id, "status": order.status, **_links(request, order.public_id), **done.outcomes}
    answer["reason"] = done.reason
    if done.unfinished:
        response["Retry-After"] = str(SYNC_RETRY_AFTER_SECONDS)
        message = "The payment gateway did not answer; the order is recorded and its payment will be retried"
        return Status(503, {**answer, "error": message, "fields": {}})
    return Status(201, answer)


@api.get("/orders/{order_id}", response={200: OrderOut, 404: ErrorOut, **BUSY})
def get_order(request: HttpRequest, order_id: str) -> Status[dict]:
    """The customer's view of the order: customer texts only (see shop/storefront/timeline.py), never the staff ones."""
    order = order_by_public_id(order_id)
    if order is None:
        return Status(404, {"error": "No such order", "fields": {}})
    view = customer_order_view(order, order_timeline(order.public_id))
    return Status(
        200,
        {
            "id": order.public_id,
            "status": order.status,
            "reason": view.reason,
            "total": str(order.total),
            "currency": order.currency,
            "created_at": order.created_at,
            "lines": [
                {"sku": li.sku, "name": li.name, "unit_price": str(li.unit_price), "quantity": li.quantity}
                for li in order.lines.all()
            ],
            "timeline": [{"at": e.at, "kind": e.kind, "message": e.message} for e in view.timeline],
            "headline": view.journey.headline,
            "journey": [
                {"stage": s.key, "label": s.label, "state": s.state, "detail": s.detail}
                for s in [*view.journey.stages, *view.journey.compensations]
            ],
        },
    )
