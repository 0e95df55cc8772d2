from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html_join

from orders.models import Order, OrderLine
from orders.selectors import order_timeline
from shop.pipeline import redrive
from shop.pipeline.admin import staff_name
from shop.pipeline.admin_readonly import ReadOnlyAdmin, ReadOnlyInline


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ("sku", "name", "unit_price", "quantity", "line_total")
    readonly_fields = fields


class RedriveForm(forms.Form):
    """The stage to re-drive: one of the pipeline map's subscriptions whose input the order has."""

    stage = forms.ChoiceField(label="Stage")
    force = forms.BooleanField(
        required=False, label="Send it even if the stage already took effect (the stage then repeats nothing)"
    )

    def __init__(self, order_id: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["stage"].choices = [
            (f"{s.event}|{s.task}", f"{redrive.stage_label(s)} (queue {s.queue})") for s in redrive.stages_for(order_id)
        ]


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "email", "status", "total", "currency", "created_at", "cancel_reason")
    list_filter = ("status",)
    search_fields = ("public_id", "email")
    inlines = [OrderLineInline]
    readonly_fields = [f.name for f in Order._meta.fields] + ["timeline"]
    # The timeline first: what happened to the order is what staff open it for.
    fieldsets = [
        ("Timeline", {"fields": ["timeline"]}),
        ("Order", {"fields": [f.name for f in Order._meta.fields if f.name != "id"]}),
    ]
    actions = ["redrive_stage"]

    def timeline(self, order: Order) -> str:
        return format_html_join(
            "",
            "<div>{} <b>{}</b> {}</div>",
            ((e.created_at.strftime("%H:%M:%S.%f")[:-3], e.kind, e.message) for e in order_timeline(order.public_id)),
        )

    @admin.action(description="Re-drive a stage of the selected order")
    def redrive_stage(self, request: HttpRequest, queryset: QuerySet[Order]) -> TemplateResponse | None:
        """Choose the stage on an intermediate page, then re-drive it (``shop/pipeline/redrive.py``)."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one order to re-drive.", messages.ERROR)
            return None
        order = queryset.get()
        form = RedriveForm(order.public_id, request.POST if "apply" in request.POST else None)
        if form.is_valid():
            event, task = form.cleaned_data["stage"].split("|", 1)
            try:
                result = redrive.redrive(
                    order.public_id, task, event=event, staff=staff_name(request), force=form.cleaned_data["force"]
                )
            except redrive.RedriveRefused as exc:
                form.add_error("stage", str(exc))
            else:
                level = messages.SUCCESS if result.emitted else messages.WARNING
                self.message_user(request, result.summary, level)
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Re-drive a stage of order {order.public_id}",
            "order": order,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/orders/order/redrive.html", context)
