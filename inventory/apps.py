from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = "Inventory"

    def ready(self) -> None:
        """Tell staff re-drives (``shop/pipeline/redrive.py``) how to see what this stage already did."""
        from inventory import effects

        effects.register()
