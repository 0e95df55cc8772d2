from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from shop.pipeline import deadletters, faults
from shop.pipeline.models import DeadLetter, FaultSetting, OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = (
        "id", "kind", "order_id", "created_at", "published_at", "publish_attempts", "next_attempt_at", "parked_at", "last_error"
    )
    # Parked rows (failed too often) have a dead letter whose replay hands them back to the relay.
    list_filter = ("kind", ("published_at", admin.EmptyFieldListFilter), ("parked_at", admin.EmptyFieldListFilter))
    search_fields = ("order_id", "event_id")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "order_id", "status", "attempts", "error", "created_at")
    list_filter = ("status", "task")
    search_fields = ("order_id", "message_id")
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["replay"]

    @admin.action(description="Replay the selected dead letters")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        done = sum(deadletters.replay(letter.pk) for letter in queryset)
        self.message_user(request, f"Replayed {done} message(s).", messages.SUCCESS)


@admin.register(FaultSetting)
class FaultSettingAdmin(admin.ModelAdmin):
    """Fault switches: changeable only where FAULTS_ENABLED is on (demo, tests); read-only elsewhere."""

    list_display = ("name", "value", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return faults.active() and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: FaultSetting | None = None) -> bool:
        return faults.active() and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: FaultSetting | None = None) -> bool:
        return faults.active() and super().has_delete_permission(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        if not faults.active():
            self.message_user(request, "Fault switches are off in this configuration (FAULTS_ENABLED).", messages.WARNING)
        return super().changelist_view(request, extra_context)
