from django.apps import AppConfig


class OpsConfig(AppConfig):
    """An app only for its templates and static files: the operations part has no tables."""

    name = "shop.ops"
    label = "ops"
    verbose_name = "Operations"
