from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from orders.fraud.models import Decision, FraudCheck
from orders.fraud.services import fraud_decide
from shop.pipeline.admin_readonly import ReadOnlyAdmin


def reasons_as_sentences(reasons: list[str] | None) -> str:
    """``["velocity: 6 orders in 10 min", "amount over 1000"]`` -> "Velocity: 6 orders in 10 min. Amount over 1000."."""
    sentences = [str(r).strip().rstrip(".") for r in (reasons or []) if str(r).strip()]
    if not sentences:
        return "No risk signals."
    return " ".join(f"{s[0].upper()}{s[1:]}." for s in sentences)


@admin.register(FraudCheck)
class FraudCheckAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "decision", "score", "why", "review_deadline", "decided_by", "created_at")
    readonly_fields = ("why",)
    exclude = ("reasons",)
    list_filter = ("decision",)
    search_fields = ("order_id", "email")
    actions = ["approve", "reject"]

    @admin.display(description="reasons")
    def why(self, check: FraudCheck) -> str:
        """The rules that scored, as a sentence each (the raw list is JSON in the table)."""
        return reasons_as_sentences(check.reasons)

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
