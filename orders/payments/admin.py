from django.contrib import admin

from orders.payments.models import GatewayTransaction, Payment
from shop.pipeline.admin_readonly import ReadOnlyAdmin


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "status", "amount", "currency", "authorization_id", "decline_code", "attempts", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id",)


@admin.register(GatewayTransaction)
class GatewayTransactionAdmin(ReadOnlyAdmin):
    list_display = ("idempotency_key", "operation", "reference", "amount", "approved", "decline_code", "created_at")
    list_filter = ("operation", "approved")
    search_fields = ("reference", "idempotency_key")
