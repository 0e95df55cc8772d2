"""``ENGINE = "shop.postgresql"``: Django's PostgreSQL backend with the socket-first health check."""

from __future__ import annotations

from django.db.backends.postgresql import base

from shop.postgresql import quiet


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        """Usable without asking when the idle connection has nothing to read; else Django's ``SELECT 1``."""
        if self.connection is not None and quiet(self.connection):
            return True
        return super().is_usable()
