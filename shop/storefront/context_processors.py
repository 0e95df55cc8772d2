from django.http import HttpRequest


def cart(request: HttpRequest) -> dict:
    items = request.session.get("cart", {}) if hasattr(request, "session") else {}
    return {"cart_count": sum(items.values())}
