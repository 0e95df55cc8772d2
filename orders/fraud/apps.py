from django.apps import AppConfig


class FraudConfig(AppConfig):
    name = "orders.fraud"
    label = "fraud"
    verbose_name = "Fraud screening"

    def ready(self) -> None:
        """Tell staff re-drives (``shop/pipeline/redrive.py``) how to see what this stage already did."""
        from orders.fraud import effects

        effects.register()
