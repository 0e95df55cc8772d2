from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from shop.pipeline import faults, replays
from shop.pipeline.admin_readonly import ReadOnlyAdmin
from shop.pipeline.models import DeadLetter, FaultSetting, OutboxEvent, QueuePause


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "kind",
        "order_id",
        "created_at",
        "published_at",
        "publish_attempts",
        "next_attempt_at",
        "parked_at",
        "last_error",
    )
    # Parked rows (failed too often) have a dead letter whose replay hands them back to the relay.
    list_filter = ("kind", ("published_at", admin.EmptyFieldListFilter), ("parked_at", admin.EmptyFieldListFilter))
    search_fields = ("order_id", "event_id")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]


@admin.register(QueuePause)
class QueuePauseAdmin(ReadOnlyAdmin):
    """Who held which stage, and when: made on the operations page, never here."""

    list_display = ("queue", "paused_by", "paused_at", "workers", "resumed_by", "resumed_at")
    list_filter = ("queue", ("resumed_at", admin.EmptyFieldListFilter))
    readonly_fields = [f.name for f in QueuePause._meta.fields]


def staff_name(request: HttpRequest) -> str:
    """The name the order's timeline records for a staff action."""
    return request.user.get_full_name() or request.user.get_username()


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    """Dead letters. Bulk replay by task and time range: filter by status "parked", the task and
    the date (or the date hierarchy), select all, and replay; the outcome column then follows
    each replayed letter (``shop/pipeline/replays.py``)."""

    list_display = ("id", "task", "order_id", "status", "outcome", "attempts", "error", "created_at", "replayed_at")
    list_filter = ("status", "task", "queue", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("order_id", "message_id")
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["replay"]

    @admin.display(description="what became of it")
    def outcome(self, letter: DeadLetter) -> str:
        return replays.replay_outcome(letter)

    @admin.action(description="Replay the selected dead letters")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        ids = list(queryset.filter(status=DeadLetter.Status.PARKED).order_by("created_at", "id").values_list("pk", flat=True))
        done = replays.replay_letters(ids, staff=staff_name(request))
        skipped = queryset.count() - done.count
        note = f" {skipped} were not parked and were left alone." if skipped else ""
        self.message_user(
            request, f"Replayed {done.count} message(s).{note} The outcome column shows what became of each.", messages.SUCCESS
        )


class FaultSettingForm(forms.ModelForm):
    """A switch is one of the known ones, chosen by its meaning: a mistyped name would do nothing."""

    name = forms.ChoiceField(choices=[(name, f"{name}: {meaning}") for name, meaning in faults.SWITCHES.items()])

    class Meta:
        model = FaultSetting
        fields = ["name", "value"]


@admin.register(FaultSetting)
class FaultSettingAdmin(admin.ModelAdmin):
    """Fault switches: every known switch with its meaning, default and value in force (the
    list's table), overridden by a row; changeable only where FAULTS_ENABLED is on."""

    form = FaultSettingForm
    change_list_template = "admin/pipeline/faultsetting/change_list.html"
    list_display = ("name", "meaning", "value", "updated_at")

    @admin.display(description="meaning")
    def meaning(self, setting: FaultSetting) -> str:
        return faults.SWITCHES.get(setting.name, "not a known switch: it does nothing")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return faults.active() and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: FaultSetting | None = None) -> bool:
        return faults.active() and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: FaultSetting | None = None) -> bool:
        return faults.active() and super().has_delete_permission(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        if not faults.active():
            self.message_user(request, "Fault switches are off in this configuration (FAULTS_ENABLED).", messages.WARNING)
        return super().changelist_view(request, {**(extra_context or {}), "switches": faults.describe()})
