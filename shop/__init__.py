"""The project package: settings, urls, the Celery app, wsgi, middleware and system checks.

Its sub-packages each do one job, and import only downwards:
``storefront`` (what customers and the API see), ``pipeline`` (the machinery every stage
builds on), ``local`` (the embedded runtime of a fresh checkout) and ``proof`` (the checker
and the chaos runner). The stages themselves are the top-level apps ``orders``,
``inventory``, ``shipping`` and ``notifications``; ``tests/layering.py`` holds the rules."""

from shop.celery import app as celery_app

__all__ = ("celery_app",)
