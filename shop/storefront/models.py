from django.db import models


class Product(models.Model):
    """A catalog entry. Its stock is owned by ``inventory.StockItem`` (same SKU)."""

    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="GBP")
    image = models.CharField(max_length=200, blank=True, help_text="Path under MEDIA_URL")
    active = models.BooleanField(default=True)

    class Meta:
        db_table = "shop_product"  # kept from the ``shop`` app, which owned it first
        ordering = ["sku"]
        constraints = [models.CheckConstraint(condition=models.Q(price__gt=0), name="product_price_positive")]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class IdempotencyKey(models.Model):
    """An API Idempotency-Key, inserted in the order's transaction so duplicates serialise on it."""

    key = models.CharField(max_length=255, unique=True)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "shop_idempotencykey"  # kept from the ``shop`` app, which owned it first
