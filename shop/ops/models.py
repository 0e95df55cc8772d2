from django.db import models


class ScenarioRun(models.Model):
    """One run of a demo scenario started from the operations page: when it started and ended,
    who started it and what it did, shown on the page while it runs and after."""

    name = models.CharField(max_length=32)
    staff = models.CharField(max_length=150)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"
