from django.apps import AppConfig
from django.core import checks


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Project"

    def ready(self) -> None:
        from shop.checks import check_connection_budget, check_pipeline_map

        checks.register(check_pipeline_map, checks.Tags.compatibility)
        checks.register(check_connection_budget, checks.Tags.database)
