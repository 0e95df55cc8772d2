"""Read-only admin pages for the records the pipeline writes.

Orders, fraud checks, payments, gateway transactions, outbox events and dead letters are facts
the pipeline's steps wrote: an edit in the admin would change history behind the state
machine's back (an order made ``paid`` with no capture, a dead letter marked replayed that
never was), and a delete would lose what the checker and the timeline read. Staff act on them
through the admin's actions and the operations page, which go through the services and leave
a record; the pages themselves show no add, save or delete. Django's own view permission then
renders the change page as a read-only view.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """A model admin that can look and run its actions, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
