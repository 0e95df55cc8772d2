"""Erase the idempotency records' old plain-SHA-256 request hashes.

They covered the CVC and an unsalted hash of the card number, so anyone who
could read the table could recover both offline. New records hold a keyed
fingerprint (shop/storefront/checkout.py); an erased one answers a replay with a 422
asking for a new key, and never creates a second order.
"""

from django.db import migrations


def erase_plain_hashes(apps, schema_editor):
    apps.get_model("shop", "IdempotencyKey").objects.exclude(request_hash="").update(request_hash="")


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("shop", "0002_outbox_notify"),
    ]

    operations = [migrations.RunPython(erase_plain_hashes, migrations.RunPython.noop)]
