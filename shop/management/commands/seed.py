from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from inventory.models import StockItem
from inventory.services import stock_receive
from shop.models import Product

ADJECTIVES = ["Analytical", "Brass", "Copper", "Difference", "Engine", "Falcon", "Gilded", "Harmonic"]
NOUNS = ["Notebook", "Mug", "Lamp", "Scarf", "Compass", "Kettle"]
DEMO_STAFF = ("staff", "staff-demo-password")


class Command(BaseCommand):
    help = "Load the demo catalog (48 products with stock) and the demo staff account; safe to run twice."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--stock", type=int, default=100, help="units of each product")
        parser.add_argument("--no-staff", action="store_true")

    def handle(self, *args, stock: int, no_staff: bool, **options) -> None:
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
                        },
                    )
                    if new or not StockItem.objects.filter(sku=sku).exists():
                        stock_receive(sku=sku, quantity=stock)
                        created += 1
        if not no_staff:
            user_model = get_user_model()
            if not user_model.objects.filter(username=DEMO_STAFF[0]).exists():
                user_model.objects.create_superuser(DEMO_STAFF[0], "staff@shop.example", DEMO_STAFF[1])
        self.stdout.write(f"catalog: {Product.objects.count()} products ({created} new)")
