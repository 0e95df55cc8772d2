"""Replaying dead letters in bulk, and what became of each replay.

One letter is replayed by :func:`shop.pipeline.deadletters.replay`; here staff replay every
parked letter of one task (or all tasks) parked within a time range, and then follow each
replayed letter to its end: its stage processed the message (``completed``), it failed again
and was parked again (``parked again``), or it is still on its way (``waiting``). The answer
comes from the same records the idempotent consumer and the checker use (``ProcessedMessage``,
newer ``DeadLetter`` rows, the outbox row a relay letter names), so it holds on either broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from shop.pipeline import deadletters
from shop.pipeline.backlog import handler_for
from shop.pipeline.models import DeadLetter, OutboxEvent, ProcessedMessage

BULK_LIMIT = 1000  # letters per bulk replay: a larger backlog is replayed in several goes

NOT_REPLAYED = "parked"
DISCARDED = "discarded"
COMPLETED = "completed"
PARKED_AGAIN = "parked again"
WAITING = "waiting"


@dataclass(frozen=True)
class BulkReplay:
    """Which letters a bulk replay replayed, and which it skipped (no longer parked: replayed or
    closed by someone else meanwhile)."""

    replayed: tuple[int, ...]
    skipped: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.replayed)


def parked_letters(*, task: str = "", since: datetime | None = None, until: datetime | None = None) -> QuerySet[DeadLetter]:
    """Parked letters of one task ("" for every task), parked at ``since`` or later and before
    ``until``, oldest first: the order they failed in."""
    letters = DeadLetter.objects.filter(status=DeadLetter.Status.PARKED)
    if task:
        letters = letters.filter(task=task)
    if since is not None:
        letters = letters.filter(created_at__gte=since)
    if until is not None:
        letters = letters.filter(created_at__lt=until)
    return letters.order_by("created_at", "id")


def replay_letters(letter_ids: Iterable[int], *, staff: str) -> BulkReplay:
    """Replay each letter (each in its own transaction, so one failure keeps the others)."""
    replayed, skipped = [], []
    for pk in letter_ids:
        (replayed if deadletters.replay(pk, staff=staff) else skipped).append(pk)
    return BulkReplay(tuple(replayed), tuple(skipped))


def replay_matching(
    *, staff: str, task: str = "", since: datetime | None = None, until: datetime | None = None, limit: int = BULK_LIMIT
) -> BulkReplay:
    """Replay the parked letters of ``task`` in ``[since, until)``, at most ``limit`` of them."""
    if since is not None and until is not None and since >= until:
        raise ValueError("the time range is empty: 'since' must come before 'until'")
    ids = list(parked_letters(task=task, since=since, until=until).values_list("pk", flat=True)[:limit])
    return replay_letters(ids, staff=staff)


def replay_outcome(letter: DeadLetter) -> str:
    """What became of a letter: not replayed (``parked``), ``discarded``, or once replayed,
    ``completed``, ``parked again`` or ``waiting``."""
    if letter.status == DeadLetter.Status.PARKED:
        return NOT_REPLAYED
    if letter.status == DeadLetter.Status.DISCARDED:
        return DISCARDED
    if letter.task == deadletters.RELAY_STEP:
        return _relay_outcome(letter)
    again = DeadLetter.objects.filter(task=letter.task, message_id=letter.message_id).exclude(pk=letter.pk)
    if letter.replayed_at and again.filter(created_at__gt=letter.replayed_at).exists():
        return PARKED_AGAIN
    try:
        message_id = uuid.UUID(letter.message_id)
    except ValueError:
        return WAITING  # no event id: nothing records it as processed
    if ProcessedMessage.objects.filter(message_id=message_id, handler=handler_for(letter.task)).exists():
        return COMPLETED
    return WAITING


def _relay_outcome(letter: DeadLetter) -> str:
    """A letter the relay left is done when its outbox row is published at last."""
    row = OutboxEvent.objects.filter(pk=letter.kwargs.get("outbox_id")).values("published_at", "parked_at").first()
    if row is None:
        return WAITING  # no such row: nothing will publish it
    if row["published_at"] is not None:
        return COMPLETED
    return PARKED_AGAIN if row["parked_at"] is not None else WAITING


def replay_outcomes(letter_ids: Iterable[int]) -> dict[int, str]:
    """Letter id -> :func:`replay_outcome`, for the letters a bulk replay names."""
    return {letter.pk: replay_outcome(letter) for letter in DeadLetter.objects.filter(pk__in=list(letter_ids))}
