"""The idempotent consumer: a (message, handler) pair takes effect at most once.

The processed-message row is inserted in the same transaction as the effect,
with ``ON CONFLICT DO NOTHING``: a second delivery of the same message, even
one running concurrently, waits on the unique index and then finds the row.
"""

from __future__ import annotations

import uuid

from django.db import connection

from shop.models import ProcessedMessage


def claim_message(message_id: str | uuid.UUID, handler: str) -> bool:
    """True the first time; False when this handler already processed this message.

    Call it inside the transaction that applies the effect.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("claim_message must run inside the effect's transaction")
    table = ProcessedMessage._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} (message_id, handler, processed_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (message_id, handler) DO NOTHING RETURNING id",
            [str(message_id), handler],
        )
        return cur.fetchone() is not None


def already_processed(message_id: str | uuid.UUID, handler: str) -> bool:
    """A cheap early exit before an outside call; the final word is ``claim_message``."""
    return ProcessedMessage.objects.filter(message_id=message_id, handler=handler).exists()
