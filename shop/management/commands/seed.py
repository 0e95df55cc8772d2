import os
import secrets
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from inventory.models import StockItem
from inventory.services import stock_receive
from shop.storefront.models import Product
from shop.storefront.pictures import picture_path

ADJECTIVES = ["Analytical", "Brass", "Copper", "Difference", "Engine", "Falcon", "Gilded", "Harmonic"]
NOUNS = ["Notebook", "Mug", "Lamp", "Scarf", "Compass", "Kettle"]
DEMO_STAFF = ("staff", "staff-demo-password")  # published in the README: the demo's only


class Command(BaseCommand):
    help = (
        "Load the demo catalog (48 products with stock) and a staff account; safe to run twice. The account's "
        "password is STAFF_PASSWORD, or generated and printed once; --demo-staff gives the demo's published one."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--stock", type=int, default=100, help="units of each product")
        parser.add_argument("--no-staff", action="store_true")
        parser.add_argument("--demo-staff", action="store_true", help="the README's demo password (manage.py demo only)")

    def handle(self, *args, stock: int, no_staff: bool, demo_staff: bool = False, **options) -> None:
        created = 0
        with transaction.atomic():
            for i, adjective in enumerate(ADJECTIVES):
                for j, noun in enumerate(NOUNS):
                    sku = f"{adjective[:3].upper()}-{noun[:3].upper()}-{i * len(NOUNS) + j + 1:03d}"
                    price = Decimal(5 + (i * 7 + j * 11) % 90) + Decimal("0.99")
                    _, new = Product.objects.get_or_create(
                        sku=sku,
                        defaults={
                            "name": f"{adjective} {noun}",
                            "description": f"A fine {noun.lower()}, {adjective.lower()} edition.",
                            "price": price,
                            "image": picture_path(noun.lower()),
                        },
                    )
                    if new or not StockItem.objects.filter(sku=sku).exists():
                        stock_receive(sku=sku, quantity=stock)
                        created += 1
        if not no_staff:
            self.create_staff(demo=demo_staff)
        self.stdout.write(f"catalog: {Product.objects.count()} products ({created} new)")

    def create_staff(self, *, demo: bool) -> None:
        """Outside the demo no password from the repository: the environment's, or a new one shown once."""
        user_model = get_user_model()
        username = DEMO_STAFF[0]
        if user_model.objects.filter(username=username).exists():
            return
        given = os.environ.get("STAFF_PASSWORD", "")
        password = DEMO_STAFF[1] if demo else given or secrets.token_urlsafe(16)
        user_model.objects.create_superuser(username, "staff@shop.example", password)
        if not demo and not given:
            self.stdout.write(f"staff account created: user {username}, password {password} (shown only this once)")
