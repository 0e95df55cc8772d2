from django.contrib import admin
from django.utils.html import format_html_join

from orders.models import Order, OrderLine
from orders.selectors import order_timeline


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    readonly_fields = ("sku", "name", "unit_price", "quantity")


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("public_id", "email", "status", "total", "currency", "created_at", "cancel_reason")
    list_filter = ("status",)
    search_fields = ("public_id", "email")
    inlines = [OrderLineInline]
    readonly_fields = [f.name for f in Order._meta.fields] + ["timeline"]

    def timeline(self, order: Order) -> str:
        return format_html_join(
            "",
            "<div>{} <b>{}</b> {}</div>",
            ((e.created_at.strftime("%H:%M:%S.%f")[:-3], e.kind, e.message) for e in order_timeline(order.public_id)),
        )

    def has_add_permission(self, request) -> bool:
        return False
