from django.contrib import admin

from shipping.models import Shipment


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "carrier", "tracking_number", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id", "tracking_number")
