from django.contrib import admin
from django.urls import path

from shop import views
from shop.api import api

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("cart/add", views.cart_add, name="cart-add"),
    path("cart/clear", views.cart_clear, name="cart-clear"),
    path("checkout", views.checkout_view, name="checkout"),
    path("orders/<str:public_id>", views.order_page, name="order-page"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
]
