from django.http import HttpRequest

from shop.storefront import cart


def cart_count(request: HttpRequest) -> dict:
    """The header's "Cart (n)" on every page."""
    return {"cart_count": cart.count(request.session) if hasattr(request, "session") else 0}
