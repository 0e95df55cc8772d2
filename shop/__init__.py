"""The project package: settings, the Celery app, the storefront, and the shared plumbing
(the outbox, the processed-message record, the pipeline map)."""

from shop.celery import app as celery_app

__all__ = ("celery_app",)
