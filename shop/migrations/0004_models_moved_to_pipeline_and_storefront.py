"""The ``shop`` app's models now belong to ``pipeline`` and ``storefront``: state only, the
tables stay (see their 0001_initial)."""

from django.db import migrations

MOVED = {
    "pipeline": ["deadletter", "faultsetting", "outboxevent", "processedmessage"],
    "storefront": ["idempotencykey", "product"],
}


def _relabel(apps, *, back: bool) -> None:
    """Admin history and permissions point at content types: they move with their models."""
    content_type = apps.get_model("contenttypes", "ContentType")
    for label, models in MOVED.items():
        old, new = (label, "shop") if back else ("shop", label)
        for model in models:
            if not content_type.objects.filter(app_label=new, model=model).exists():
                content_type.objects.filter(app_label=old, model=model).update(app_label=new)


def move_content_types(apps, schema_editor) -> None:
    _relabel(apps, back=False)


def restore_content_types(apps, schema_editor) -> None:
    _relabel(apps, back=True)


class Migration(migrations.Migration):

    dependencies = [
        ('shop', '0003_relay_backoff_and_parking'),
        ('pipeline', '0001_initial'),
        ('storefront', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('orders', '0002_scrub_idempotency_fingerprints'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.RemoveConstraint(
                    model_name='deadletter',
                    name='one_parked_per_message',
                ),
                migrations.DeleteModel(
                    name='DeadLetter',
                ),
                migrations.DeleteModel(
                    name='FaultSetting',
                ),
                migrations.DeleteModel(
                    name='IdempotencyKey',
                ),
                migrations.RemoveIndex(
                    model_name='outboxevent',
                    name='outbox_due',
                ),
                migrations.DeleteModel(
                    name='OutboxEvent',
                ),
                migrations.RemoveConstraint(
                    model_name='processedmessage',
                    name='processed_once',
                ),
                migrations.DeleteModel(
                    name='ProcessedMessage',
                ),
                migrations.RemoveConstraint(
                    model_name='product',
                    name='product_price_positive',
                ),
                migrations.DeleteModel(
                    name='Product',
                ),
            ],
        ),
        migrations.RunPython(move_content_types, restore_content_types),
    ]
