from django.contrib import admin

from inventory.models import StockHold, StockItem


@admin.register(StockItem)
class StockItemAdmin(admin.ModelAdmin):
    list_display = ("sku", "available", "reserved", "shipped", "received")
    search_fields = ("sku",)


@admin.register(StockHold)
class StockHoldAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "lines", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id",)
