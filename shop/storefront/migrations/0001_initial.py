"""The storefront's tables, moved from the ``shop`` app: products and API idempotency keys.

State only: the tables, their data, indexes, constraints and the outbox trigger stay as they are
(``Meta.db_table`` keeps the ``shop_*`` names), so an existing database loses nothing and a fresh
one is created by ``shop``'s migrations 0001-0003 first."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('shop', '0003_relay_backoff_and_parking'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='IdempotencyKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('key', models.CharField(max_length=255, unique=True)),
                        ('request_hash', models.CharField(max_length=64)),
                        ('status_code', models.PositiveSmallIntegerField()),
                        ('response', models.JSONField()),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        'db_table': 'shop_idempotencykey',
                    },
                ),
                migrations.CreateModel(
                    name='Product',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('sku', models.CharField(max_length=32, unique=True)),
                        ('name', models.CharField(max_length=120)),
                        ('description', models.TextField(blank=True)),
                        ('price', models.DecimalField(decimal_places=2, max_digits=10)),
                        ('currency', models.CharField(default='GBP', max_length=3)),
                        ('image', models.CharField(blank=True, help_text='Path under MEDIA_URL', max_length=200)),
                        ('active', models.BooleanField(default=True)),
                    ],
                    options={
                        'db_table': 'shop_product',
                        'ordering': ['sku'],
                        'constraints': [models.CheckConstraint(condition=models.Q(('price__gt', 0)), name='product_price_positive')],
                    },
                ),
            ],
        ),
    ]
