"""Formats the storefront shows the same way everywhere: money with its currency, and times."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import template
from django.utils import timezone

register = template.Library()

SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}


@register.simple_tag
def money(amount: Decimal | int | str, currency: str) -> str:
    """``£12.50``, or ``CHF 12.50`` for a currency without a symbol here: never a bare number."""
    value = f"{Decimal(str(amount)).quantize(Decimal('0.01')):,}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{currency} {value}"


@register.filter
def clock(at: datetime | None) -> str:
    """One format for every time on the order page, first render and updates alike (HH:MM:SS)."""
    if at is None:
        return ""
    return timezone.localtime(at).strftime("%H:%M:%S")


@register.filter
def seconds(value: float | None) -> str:
    """How long a stage took: ``0.8 s``, ``12 s``, ``3 min``."""
    if value is None:
        return ""
    if value < 0.1:
        return "under 0.1 s"
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min"
