from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.defaults import page_not_found

from shop.storefront import views
from shop.storefront.api import api

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("cart/add", views.cart_add, name="cart-add"),
    path("cart/clear", views.cart_clear, name="cart-clear"),
    path("checkout", views.checkout_view, name="checkout"),
    path("orders/<str:public_id>", views.order_page, name="order-page"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Under /api/ even an unknown path answers in the API's error shape."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "Not found", "fields": {}}, status=404)
    return page_not_found(request, exception)
