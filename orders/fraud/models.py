from django.conf import settings
from django.db import models


class Decision(models.TextChoices):
    APPROVE = "approve"
    REVIEW = "review"
    REJECT = "reject"
    EXPIRED = "expired"  # a review nobody decided before its deadline: the order is cancelled


class FraudCheck(models.Model):
    """One screening per order, with the reasons; a review waits for a staff decision
    until ``review_deadline`` and no longer (stock and an authorisation are held meanwhile)."""

    order_id = models.CharField(max_length=32, unique=True)
    email = models.EmailField(db_index=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    score = models.PositiveIntegerField()
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reasons = models.JSONField(default=list)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(null=True, blank=True)
    review_deadline = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # What the sweeper scans: only the open reviews, by deadline.
            models.Index(fields=["review_deadline"], name="fraud_open_review", condition=models.Q(decision="review")),
        ]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.decision} ({self.score})"
