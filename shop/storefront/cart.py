"""The cart: SKU -> quantity in the session, and the lines and totals the pages show.

Plain functions over the session's dict, so the views stay thin and the rules (quantity
bounds, a line at zero is removed, totals per currency) are in one place.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shop.storefront.checkout import MAX_QUANTITY
from shop.storefront.models import Product

SESSION_KEY = "cart"


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def subtotal(self) -> Decimal:
        return self.product.price * self.quantity


def contents(session: Any) -> dict[str, int]:
    """SKU -> quantity; anything malformed in the session is dropped rather than trusted."""
    raw = session.get(SESSION_KEY, {})
    if not isinstance(raw, dict):
        return {}
    return {str(sku): int(qty) for sku, qty in raw.items() if isinstance(qty, int) and qty > 0}


def _save(session: Any, items: dict[str, int]) -> None:
    session[SESSION_KEY] = items


def add(session: Any, sku: str, quantity: int) -> int:
    """Add to a line (capped at ``MAX_QUANTITY``); returns the line's new quantity."""
    items = contents(session)
    items[sku] = min(items.get(sku, 0) + quantity, MAX_QUANTITY)
    _save(session, items)
    return items[sku]


def set_quantity(session: Any, sku: str, quantity: int) -> int:
    """Set a line's quantity; zero removes the line. Returns the quantity kept."""
    items = contents(session)
    if quantity <= 0:
        items.pop(sku, None)
        quantity = 0
    else:
        items[sku] = min(quantity, MAX_QUANTITY)
    _save(session, items)
    return items.get(sku, 0)


def replace(session: Any, items: dict[str, int]) -> None:
    """The whole cart at once (a new checkout with a cancelled order's lines)."""
    _save(session, {sku: min(qty, MAX_QUANTITY) for sku, qty in items.items() if qty > 0})


def clear(session: Any) -> None:
    _save(session, {})


def lines(session: Any) -> list[CartLine]:
    """The cart's lines with their active products, in the order they were added."""
    items = contents(session)
    products = {p.sku: p for p in Product.objects.filter(sku__in=items, active=True)}
    return [CartLine(products[sku], qty) for sku, qty in items.items() if sku in products]


def totals(cart_lines: list[CartLine]) -> list[tuple[str, Decimal]]:
    """(currency, total) for each currency in the cart: a sum of pounds and euros means nothing."""
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for line in cart_lines:
        sums[line.product.currency] += line.subtotal
    return sorted(sums.items())


def count(session: Any) -> int:
    return sum(contents(session).values())
