from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from notifications import services
from notifications.models import MailboxMessage, SentEmail


class InDoubtFilter(admin.SimpleListFilter):
    """Emails whose fate is unknown: marked in doubt, or claimed too long ago to be a live send."""

    title = "needs staff"
    parameter_name = "in_doubt"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "In doubt: may or may not have gone out")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SentEmail]) -> QuerySet[SentEmail]:
        if self.value() == "yes":
            return queryset.filter(pk__in=services.emails_in_doubt().values("pk"))
        return queryset


@admin.register(SentEmail)
class SentEmailAdmin(admin.ModelAdmin):
    list_display = ("order_id", "kind", "to", "status", "attempts", "claimed_at", "sent_at", "resends", "last_error")
    list_filter = (InDoubtFilter, "status", "kind")
    search_fields = ("order_id", "to")
    readonly_fields = [f.name for f in SentEmail._meta.fields]
    actions = ["resend"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Re-send the selected emails in doubt")
    def resend(self, request: HttpRequest, queryset: QuerySet[SentEmail]) -> None:
        sent, skipped, failed = 0, 0, []
        for email in queryset:
            try:
                row = services.email_resend(email_id=email.pk, staff=request.user.get_username())
            except services.EmailNotInDoubt:
                skipped += 1
                continue
            self.log_change(request, row, f"Re-sent by staff: {row.status}")
            if row.status == SentEmail.Status.SENT:
                sent += 1
            else:
                failed.append(f"{row.order_id} {row.kind}: {row.last_error}")
        if sent:
            self.message_user(request, f"Re-sent {sent} email(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} email(s) that are not in doubt.", messages.WARNING)
        for line in failed:
            self.message_user(request, f"Still in doubt: {line}", messages.ERROR)


@admin.register(MailboxMessage)
class MailboxMessageAdmin(admin.ModelAdmin):
    list_display = ("subject", "to", "kind", "order_id", "delivered_at")
    readonly_fields = ("message_id", "to", "subject", "body", "order_id", "kind", "delivered_at")
