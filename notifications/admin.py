from django.contrib import admin

from notifications.models import MailboxMessage, SentEmail


@admin.register(SentEmail)
class SentEmailAdmin(admin.ModelAdmin):
    list_display = ("order_id", "kind", "to", "status", "claimed_at", "sent_at")
    list_filter = ("kind", "status")


@admin.register(MailboxMessage)
class MailboxMessageAdmin(admin.ModelAdmin):
    list_display = ("subject", "to", "kind", "order_id", "delivered_at")
    readonly_fields = ("message_id", "to", "subject", "body", "order_id", "kind", "delivered_at")
