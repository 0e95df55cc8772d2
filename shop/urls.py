from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.defaults import page_not_found

from shop.storefront import order_views, views
from shop.storefront.api import api

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("products/<str:sku>", views.product_page, name="product"),
    path("cart", views.cart_page, name="cart"),
    path("cart/add", views.cart_add, name="cart-add"),
    path("cart/update", views.cart_update, name="cart-update"),
    path("cart/clear", views.cart_clear, name="cart-clear"),
    path("checkout", order_views.checkout_view, name="checkout"),
    path("orders/<str:public_id>", order_views.order_page, name="order-page"),
    path("orders/<str:public_id>/live", order_views.order_live, name="order-live"),
    path("orders/<str:public_id>/emails", order_views.order_emails, name="order-emails"),
    path("orders/<str:public_id>/stream", order_views.order_stream, name="order-stream"),
    path("orders/<str:public_id>/retry", order_views.order_retry, name="order-retry"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("", include("shop.ops.urls")),
]

# The admin's index links to the operations page.
admin.site.index_template = "ops/admin_index.html"


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Under /api/ even an unknown path answers in the API's error shape."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "Not found", "fields": {}}, status=404)
    return page_not_found(request, exception)
