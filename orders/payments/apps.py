from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "orders.payments"
    label = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        """Tell staff re-drives (``shop/pipeline/redrive.py``) how to see what this stage already did."""
        from orders.payments import effects

        effects.register()
