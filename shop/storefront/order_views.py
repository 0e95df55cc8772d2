"""Checkout, the order page (its stream, and the fragment polling fetches), "try again with another
card", and the order's emails in the demo mailbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import connection, transaction
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from notifications.selectors import mailbox_for_order, mailbox_in_use
from orders.models import Order
from orders.payments.selectors import authorization_attempts
from orders.selectors import order_by_public_id, order_timeline
from shop.storefront import cart, checkout, stream
from shop.storefront.forms import TEST_CARDS, CheckoutForm
from shop.storefront.order_events import hub
from shop.storefront.timeline import customer_order_view

# The checkout's field names (the API's dotted names) -> the form's fields.
FORM_FIELDS = {"card.number": "card_number", "card.exp_year": "exp_year", "card.exp_month": "exp_month", "email": "email"}
ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "country")
PREFILL_KEY = "checkout_prefill"


def _request(form: CheckoutForm, lines: list[cart.CartLine]) -> checkout.CheckoutRequest:
    d = form.cleaned_data
    return checkout.CheckoutRequest(
        email=d["email"],
        name=d["name"],
        address={name: d[name] for name in ADDRESS_FIELDS},
        items=[{"sku": line.product.sku, "quantity": line.quantity} for line in lines],
        card={"number": d["card_number"], "exp_month": d["exp_month"], "exp_year": d["exp_year"], "cvc": d["cvc"]},
    )


def _report(form: CheckoutForm, exc: checkout.CheckoutError) -> None:
    """The checkout's 422 as form errors, each once: on its field, or (an item) naming the product."""
    reported = False
    for name, text in exc.fields.items():
        if name.startswith("items."):
            form.add_error(None, f"{text[:1].upper()}{text[1:]}: change the quantity in your cart.")
            reported = True
        elif name in FORM_FIELDS:
            form.add_error(FORM_FIELDS[name], f"{text[:1].upper()}{text[1:]}.")
            reported = True
    if not reported:
        form.add_error(None, exc.message)


def checkout_view(request: HttpRequest) -> HttpResponse:
    lines = cart.lines(request.session)
    status = 200
    if request.method == "POST":
        form = CheckoutForm(request.POST)
        if form.is_valid() and lines:
            # A double-clicked submit carries the same hidden key: one order.
            key = f"form-{form.cleaned_data['idempotency_key']}"
            try:
                order, _ = checkout.place(_request(form, lines), idempotency_key=key, fingerprint_of={"key": key})
            except checkout.CheckoutError as exc:
                _report(form, exc)
            else:
                cart.clear(request.session)
                request.session.pop(PREFILL_KEY, None)
                return redirect("order-page", order.public_id)
        status = 422 if lines else 200
    else:
        form = CheckoutForm(initial={**request.session.get(PREFILL_KEY, {}), "idempotency_key": uuid.uuid4().hex})
    context = {
        "form": form,
        "lines": lines,
        "totals": cart.totals(lines),
        "test_cards": TEST_CARDS,
        "bad_fields": [field for field in form.visible_fields() if field.errors],  # the summary's links
        "demo_domains": settings.FRAUD_VELOCITY_EXEMPT_DOMAINS,  # said on the form only where set (the demo)
    }
    return render(request, "shop/checkout.html", context, status=status)


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Read the order row, its timeline and its attempts as of one moment. Statement by statement
    (read committed), a delivery committed between two reads gave the delivery's position with the
    shipped state, and the stream never sent the delivery: it had already shown that position."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:  # inside a caller's transaction its snapshot rules
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _order_context(public_id: str) -> dict[str, Any]:
    with _one_snapshot():
        order = order_by_public_id(public_id)
        if order is None:
            raise Http404("No such order")
        events = order_timeline(public_id)
        attempts = authorization_attempts(public_id)
    view = customer_order_view(order, events)
    position = stream.Position.of([event.id for event in events], attempts)
    return {"order": order, "reason": view.reason, "timeline": view.timeline, "journey": view.journey, "position": position}


def order_page(request: HttpRequest, public_id: str) -> HttpResponse:
    """The customer's page: customer texts only (shop/storefront/timeline.py); staff read the admin."""
    return render(request, "shop/order.html", {**_order_context(public_id), "mailbox": mailbox_in_use()})


def order_live(request: HttpRequest, public_id: str) -> HttpResponse:
    """The page's changing part, rendered by the same template as the first render (one format)."""
    return render(request, "shop/_order_live.html", _order_context(public_id))


def order_emails(request: HttpRequest, public_id: str) -> HttpResponse:
    """The emails sent for this order, as the demo's mailbox holds them: 404 unless that mailbox
    is in use (with SMTP they are in the customer's inbox). The unguessable public id is the key,
    as for the order page."""
    if not mailbox_in_use():
        raise Http404("No mailbox: emails go to the customer's inbox")
    order = order_by_public_id(public_id)
    if order is None:
        raise Http404("No such order")
    return render(request, "shop/order_emails.html", {"order": order, "emails": mailbox_for_order(public_id)})


def _snapshot(public_id: str, csrf_token: str) -> stream.Snapshot:
    """The fragment as the page and its polling render it (the token given, so no session is read)."""
    context = _order_context(public_id)
    html = render_to_string("shop/_order_live.html", {**context, "csrf_token": csrf_token})
    journey = context["journey"]
    data = {"html": html, "status": context["order"].status}
    return stream.Snapshot(position=context["position"], data=data, settled=journey.settled)


@require_GET
def order_stream(request: HttpRequest, public_id: str) -> HttpResponse:
    """Server-Sent Events for the order page: the fragment again whenever the order has news."""
    if order_by_public_id(public_id) is None:
        raise Http404("No such order")
    try:
        since = stream.Position.parse(request.headers.get("Last-Event-ID") or request.GET.get("last", ""))
    except ValueError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    limits = stream.limits()
    if not stream.slots.take(limits.max_open):
        refused = HttpResponse("Too many open order pages: polling instead.", status=503, content_type="text/plain")
        refused["Retry-After"] = "10"
        return refused
    token = get_token(request)
    events = stream.EventStream(public_id, lambda: _snapshot(public_id, token), since=since, hub=hub, limits=limits)
    if events.nothing_to_send():
        events.close()
        return HttpResponse(status=204)  # EventSource does not reconnect after a 204
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer it either
    return response


@require_POST
def order_retry(request: HttpRequest, public_id: str) -> HttpResponse:
    """A cancelled order's "try again with another card": a new checkout with the same lines and address."""
    order: Order | None = order_by_public_id(public_id)
    if order is None:
        raise Http404("No such order")
    cart.replace(request.session, {line.sku: line.quantity for line in order.lines.all()})
    request.session[PREFILL_KEY] = {
        "email": order.email,
        "name": order.name,
        "line1": order.address_line1,
        "line2": order.address_line2,
        "city": order.city,
        "postal_code": order.postal_code,
        "country": order.country,
    }
    messages.success(request, "The same items are in your cart again: choose another card to place a new order.")
    return redirect("checkout")
