"""The storefront's shop pages: catalog, product page and cart (in the session).

Checkout and the order page are in ``order_views.py``. Views parse, call one function of
``cart.py`` (or a selector) and render; a message names the product, never its SKU.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from inventory.models import StockItem
from shop.storefront import cart
from shop.storefront.checkout import MAX_QUANTITY
from shop.storefront.forms import AddToCartForm, CartLineForm
from shop.storefront.models import Product
from shop.storefront.pictures import hue_for, picture_for


def _card(product: Product, stock: int) -> dict:
    return {"product": product, "stock": stock, "picture": picture_for(product), "hue": hue_for(product)}


def catalog(request: HttpRequest) -> HttpResponse:
    stock = dict(StockItem.objects.values_list("sku", "available"))
    products = [_card(p, stock.get(p.sku, 0)) for p in Product.objects.filter(active=True)]
    return render(request, "shop/catalog.html", {"products": products})


def product_page(request: HttpRequest, sku: str) -> HttpResponse:
    product = Product.objects.filter(sku=sku, active=True).first()
    if product is None:
        raise Http404("No such product")
    stock = StockItem.objects.filter(sku=sku).values_list("available", flat=True).first() or 0
    context = {**_card(product, stock), "max_quantity": min(stock, MAX_QUANTITY)}
    return render(request, "shop/product.html", context)


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Back to the page the form was on (only a page of this site), else ``default``."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(default)


def _product_or_none(sku: str) -> Product | None:
    return Product.objects.filter(sku=sku, active=True).first()


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    form = AddToCartForm(request.POST)
    product = _product_or_none(form.cleaned_data["sku"]) if form.is_valid() else None
    if product is None:
        messages.error(request, "That product cannot be added.")
        return _back(request, "catalog")
    quantity = cart.add(request.session, product.sku, form.cleaned_data["quantity"])
    messages.success(request, f"Added {product.name} to your cart ({quantity} in the cart).")
    return _back(request, "catalog")


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    """A line's new quantity (zero, or the "Remove" button, takes it out)."""
    data = request.POST.copy()
    if "remove" in data:
        data["quantity"] = "0"
    form = CartLineForm(data)
    product = _product_or_none(form.cleaned_data["sku"]) if form.is_valid() else None
    if product is None:
        messages.error(request, f"Enter a quantity from 0 to {MAX_QUANTITY}.")
        return redirect("cart")
    if cart.set_quantity(request.session, product.sku, form.cleaned_data["quantity"]):
        messages.success(request, f"{product.name}: quantity changed to {form.cleaned_data['quantity']}.")
    else:
        messages.success(request, f"Removed {product.name} from your cart.")
    return redirect("cart")


@require_POST
def cart_clear(request: HttpRequest) -> HttpResponse:
    cart.clear(request.session)
    messages.success(request, "Your cart is empty.")
    return redirect("catalog")


def cart_page(request: HttpRequest) -> HttpResponse:
    lines = cart.lines(request.session)
    stock = dict(StockItem.objects.filter(sku__in=[line.product.sku for line in lines]).values_list("sku", "available"))
    rows = [{"line": line, "picture": picture_for(line.product), "stock": stock.get(line.product.sku, 0)} for line in lines]
    return render(request, "shop/cart.html", {"rows": rows, "totals": cart.totals(lines), "max_quantity": MAX_QUANTITY})
