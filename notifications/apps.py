from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        """Tell staff re-drives (``shop/pipeline/redrive.py``) how to see what this stage already did."""
        from notifications import effects

        effects.register()
