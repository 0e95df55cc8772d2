"""A stage's own row for an order, locked, created on first sight by whichever message comes first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


def locked_row(model: type[M], new: Callable[[], M], *, insert_first: bool, **lookup: Any) -> M:
    """The row ``lookup`` names, locked (``SELECT ... FOR UPDATE``); ``new()`` inserted when missing.

    Call it inside the step's transaction. Two copies racing to create it both insert with
    ``ON CONFLICT DO NOTHING`` and then lock the one row. ``insert_first`` is for the step that
    nearly always sees the order first (its insert would be needed anyway); every other step
    nearly always finds the row, so it locks first and inserts only when the row is missing:
    one statement instead of two on the common path.
    """
    if not insert_first:
        found = model._default_manager.select_for_update().filter(**lookup).first()
        if found is not None:
            return found
    model._default_manager.bulk_create([new()], ignore_conflicts=True)
    return model._default_manager.select_for_update().get(**lookup)
