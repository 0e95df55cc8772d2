from django.db import models


class FaultSetting(models.Model):
    """A runtime fault switch set by staff; overrides the environment default (see shop/pipeline/faults.py)."""

    name = models.CharField(max_length=64, unique=True)
    value = models.CharField(max_length=200)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
