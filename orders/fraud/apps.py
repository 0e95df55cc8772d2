from django.apps import AppConfig


class FraudConfig(AppConfig):
    name = "orders.fraud"
    label = "fraud"
    verbose_name = "Fraud screening"
