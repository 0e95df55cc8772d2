"""Product pictures: simple SVG illustrations drawn for the shop, one per kind of product.

They are static files committed with the storefront (``static/shop/products/``), so the
catalog needs nothing from the network. A product's ``image`` wins when it names one; else
the kind is the last word of its name ("Brass Mug" is a mug); anything else is a parcel.
"""

from __future__ import annotations

from shop.storefront.models import Product

KINDS = ("notebook", "mug", "lamp", "scarf", "compass", "kettle")
FALLBACK = "parcel"


def picture_path(kind: str) -> str:
    """The static path of a kind's illustration."""
    return f"shop/products/{kind}.svg"


def picture_for(product: Product) -> str:
    """The static path of the product's picture."""
    if product.image:
        return product.image
    words = product.name.lower().split()
    kind = words[-1] if words and words[-1] in KINDS else FALLBACK
    return picture_path(kind)


def hue_for(product: Product) -> int:
    """A background hue per product, stable across pages, so two mugs do not look identical."""
    return sum(product.sku.encode()) * 37 % 360
