from shop.models.catalog import Product
from shop.models.faults import FaultSetting
from shop.models.messaging import DeadLetter, IdempotencyKey, OutboxEvent, ProcessedMessage

__all__ = ["DeadLetter", "FaultSetting", "IdempotencyKey", "OutboxEvent", "ProcessedMessage", "Product"]
