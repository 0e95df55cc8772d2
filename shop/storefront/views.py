"""The storefront: catalog, cart (in the session), checkout form, and the live order page."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from inventory.models import StockItem
from orders.selectors import order_by_public_id, order_timeline
from shop.storefront import checkout
from shop.storefront.forms import AddToCartForm, CheckoutForm
from shop.storefront.models import Product
from shop.storefront.timeline import customer_order_view

CARD_FIELDS = {"card.number": "card_number", "card.exp_year": "exp_year", "card.exp_month": "exp_month", "email": "email"}


def catalog(request: HttpRequest) -> HttpResponse:
    stock = dict(StockItem.objects.values_list("sku", "available"))
    products = [(p, stock.get(p.sku, 0)) for p in Product.objects.filter(active=True)]
    return render(request, "shop/catalog.html", {"products": products})


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    form = AddToCartForm(request.POST)
    if not form.is_valid() or not Product.objects.filter(sku=form.cleaned_data["sku"], active=True).exists():
        messages.error(request, "That product cannot be added.")
        return redirect("catalog")
    cart = request.session.get("cart", {})
    sku = form.cleaned_data["sku"]
    cart[sku] = min(cart.get(sku, 0) + form.cleaned_data["quantity"], checkout.MAX_QUANTITY)
    request.session["cart"] = cart
    messages.success(request, f"Added {sku} to your cart.")
    return redirect("catalog")


@require_POST
def cart_clear(request: HttpRequest) -> HttpResponse:
    request.session["cart"] = {}
    return redirect("catalog")


def _cart_lines(request: HttpRequest) -> list[tuple[Product, int]]:
    cart = request.session.get("cart", {})
    products = {p.sku: p for p in Product.objects.filter(sku__in=cart)}
    return [(products[sku], qty) for sku, qty in cart.items() if sku in products]


def checkout_view(request: HttpRequest) -> HttpResponse:
    lines = _cart_lines(request)
    if request.method == "POST":
        form = CheckoutForm(request.POST)
        if form.is_valid() and lines:
            d = form.cleaned_data
            req = checkout.CheckoutRequest(
                email=d["email"],
                name=d["name"],
                address={
                    "line1": d["line1"],
                    "line2": d["line2"],
                    "city": d["city"],
                    "postal_code": d["postal_code"],
                    "country": d["country"],
                },
                items=[{"sku": p.sku, "quantity": q} for p, q in lines],
                card={"number": d["card_number"], "exp_month": d["exp_month"], "exp_year": d["exp_year"], "cvc": d["cvc"]},
            )
            # A double-clicked submit carries the same hidden key: one order.
            key = f"form-{d['idempotency_key']}"
            try:
                order, _ = checkout.place(req, idempotency_key=key, fingerprint_of={"key": key})
            except checkout.CheckoutError as exc:
                form.add_error(None, exc.message)
                for name, text in exc.fields.items():
                    field = CARD_FIELDS.get(name)
                    if field:
                        form.add_error(field, text)
            else:
                request.session["cart"] = {}
                return redirect("order-page", order.public_id)
    else:
        form = CheckoutForm(initial={"idempotency_key": uuid.uuid4().hex})
    total = sum((p.price * q for p, q in lines), 0)
    return render(request, "shop/checkout.html", {"form": form, "lines": lines, "total": total})


def order_page(request: HttpRequest, public_id: str) -> HttpResponse:
    """The customer's page: customer texts only (shop/storefront/timeline.py); staff read the admin."""
    order = order_by_public_id(public_id)
    if order is None:
        raise Http404("No such order")
    view = customer_order_view(order, order_timeline(public_id))
    return render(request, "shop/order.html", {"order": order, "reason": view.reason, "timeline": view.timeline})
