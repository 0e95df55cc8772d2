"""The pipeline's tables, moved from the ``shop`` app: outbox events, processed messages,
dead letters and fault switches.

State only: the tables, their data, indexes, constraints and the outbox trigger stay as they are
(``Meta.db_table`` keeps the ``shop_*`` names), so an existing database loses nothing and a fresh
one is created by ``shop``'s migrations 0001-0003 first."""

import django.db.models.functions.datetime
import uuid
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
                    name='FaultSetting',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=64, unique=True)),
                        ('value', models.CharField(max_length=200)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'shop_faultsetting',
                    },
                ),
                migrations.CreateModel(
                    name='DeadLetter',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('task', models.CharField(max_length=120)),
                        ('queue', models.CharField(blank=True, max_length=64)),
                        ('message_id', models.CharField(max_length=100)),
                        ('delivery_id', models.CharField(blank=True, max_length=200)),
                        ('order_id', models.CharField(blank=True, db_index=True, max_length=32)),
                        ('kwargs', models.JSONField(default=dict)),
                        ('error', models.TextField()),
                        ('traceback', models.TextField(blank=True)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('status', models.CharField(choices=[('parked', 'Parked'), ('replayed', 'Replayed'), ('discarded', 'Discarded')], default='parked', max_length=16)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('replayed_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'shop_deadletter',
                        'ordering': ['-id'],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'parked')), fields=('message_id', 'task'), name='one_parked_per_message')],
                    },
                ),
                migrations.CreateModel(
                    name='OutboxEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('event_id', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                        ('kind', models.CharField(db_index=True, max_length=64)),
                        ('order_id', models.CharField(db_index=True, help_text="The order's public id", max_length=32)),
                        ('payload', models.JSONField(default=dict)),
                        ('message', models.CharField(blank=True, max_length=300)),
                        ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                        ('claimed_by', models.CharField(blank=True, max_length=64)),
                        ('claimed_until', models.DateTimeField(blank=True, null=True)),
                        ('published_at', models.DateTimeField(blank=True, null=True)),
                        ('publish_attempts', models.PositiveIntegerField(default=0)),
                        ('last_error', models.TextField(blank=True)),
                        ('next_attempt_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                        ('parked_at', models.DateTimeField(blank=True, null=True)),
                        ('request_id', models.CharField(blank=True, max_length=64)),
                        ('target_task', models.CharField(blank=True, max_length=120)),
                    ],
                    options={
                        'db_table': 'shop_outboxevent',
                        'ordering': ['id'],
                        'indexes': [models.Index(condition=models.Q(('parked_at__isnull', True), ('published_at__isnull', True)), fields=['next_attempt_at', 'id'], name='outbox_due')],
                    },
                ),
                migrations.CreateModel(
                    name='ProcessedMessage',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('message_id', models.UUIDField()),
                        ('handler', models.CharField(max_length=120)),
                        ('processed_at', models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        'db_table': 'shop_processedmessage',
                        'constraints': [models.UniqueConstraint(fields=('message_id', 'handler'), name='processed_once')],
                    },
                ),
            ],
        ),
    ]
