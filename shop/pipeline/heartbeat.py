"""The relay's heartbeat: one row per relay process, refreshed every ``RELAY_HEARTBEAT_SECONDS``.

An outbox with nothing waiting looks the same whether its relay is idle or dead; a relay that
hangs (a lost broker connection that never times out, a stuck LISTEN) still looks alive to the
process list. A beat written by the relay's own loop says it went round that loop recently.
The operations page shows each relay with the age of its last beat and calls it stale past
three intervals; a clean stop records ``stopped_at``. Rows of relays stopped or silent for a
day are removed by the next beat.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from shop.pipeline.models import RelayHeartbeat

FORGET_AFTER = timedelta(days=1)


def beat(relay_id: str, started_at: datetime, published: int) -> None:
    now = timezone.now()
    RelayHeartbeat.objects.update_or_create(
        relay_id=relay_id,
        defaults={"started_at": started_at, "beat_at": now, "published": published, "stopped_at": None},
    )
    RelayHeartbeat.objects.filter(beat_at__lt=now - FORGET_AFTER).delete()


def stopped(relay_id: str) -> None:
    RelayHeartbeat.objects.filter(relay_id=relay_id).update(stopped_at=timezone.now())


def relays(now: datetime | None = None) -> list[dict[str, Any]]:
    """Every relay heard from in the last day: alive (a beat within three intervals), stale, or stopped."""
    now = now or timezone.now()
    stale_after = 3 * settings.RELAY_HEARTBEAT_SECONDS
    found = []
    for row in RelayHeartbeat.objects.filter(beat_at__gte=now - FORGET_AFTER).order_by("-beat_at")[:20]:
        age = (now - row.beat_at).total_seconds()
        state = "stopped" if row.stopped_at else ("alive" if age <= stale_after else "stale")
        found.append(
            {
                "relay": row.relay_id,
                "state": state,
                "beat_age_s": round(age, 1),
                "published": row.published,
                "up_s": round((row.beat_at - row.started_at).total_seconds()),
            }
        )
    return found
