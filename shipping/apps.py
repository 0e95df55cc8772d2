from django.apps import AppConfig


class ShippingConfig(AppConfig):
    name = "shipping"
    verbose_name = "Shipping"

    def ready(self) -> None:
        """Tell staff re-drives (``shop/pipeline/redrive.py``) how to see what this stage already did."""
        from shipping import effects

        effects.register()
