from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from orders.fraud.models import Decision, FraudCheck
from orders.fraud.services import fraud_decide


@admin.register(FraudCheck)
class FraudCheckAdmin(admin.ModelAdmin):
    list_display = ("order_id", "decision", "score", "reasons", "review_deadline", "decided_by", "created_at")
    list_filter = ("decision",)
    search_fields = ("order_id", "email")
    actions = ["approve", "reject"]

    def _decide(self, request: HttpRequest, queryset: QuerySet[FraudCheck], approve: bool) -> None:
        done = sum(fraud_decide(order_id=c.order_id, approve=approve, user=request.user) for c in queryset)
        self.message_user(request, f"Decided {done} review(s).", messages.SUCCESS)
        if late := queryset.filter(decision=Decision.EXPIRED).count():
            self.message_user(request, f"{late} review(s) were past their deadline: cancelled.", messages.WARNING)

    @admin.action(description="Approve the selected reviews (the order resumes)")
    def approve(self, request: HttpRequest, queryset: QuerySet[FraudCheck]) -> None:
        self._decide(request, queryset, True)

    @admin.action(description="Reject the selected reviews (the order is cancelled)")
    def reject(self, request: HttpRequest, queryset: QuerySet[FraudCheck]) -> None:
        self._decide(request, queryset, False)
