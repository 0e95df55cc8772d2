from django.contrib import admin

from shop.storefront.models import Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price", "currency", "active")
    search_fields = ("sku", "name")
