"""Leaving the vhost as the ceilings found it: their queues and exchange, and what a worker declared."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from kombu import Connection

from bench import noop
from shop.pipeline.queues import DEAD_LETTER_QUEUE, is_rabbitmq

PUBLISH_QUEUE = "bench_ceiling_publish"
DELAYED_LEVELS = 28  # kombu's native delayed delivery: celery_delayed_0 .. celery_delayed_27

# What a worker of the shop declares on a vhost besides its queue: kombu's delayed delivery,
# the dead-letter queue (shop/celery.py), events and remote control.
DELAYED = [f"celery_delayed_{level}" for level in range(DELAYED_LEVELS)]
WORKER_QUEUES = [DEAD_LETTER_QUEUE, *DELAYED]
WORKER_EXCHANGES = ["dlx", "celeryev", "celery.pidbox", "reply.celery.pidbox", *DELAYED, "celery_delayed_delivery"]


@contextlib.contextmanager
def cleaned_broker(broker_url: str, broker_dir: Path | None) -> Iterator[None]:
    """Delete the bench's queues and exchange afterwards, and whatever of a worker's
    declarations the vhost did not have before (on the filesystem broker: the ceilings'
    own broker folder)."""
    rabbit = is_rabbitmq(broker_url)
    had = _existing(broker_url) if rabbit else ([], [])
    try:
        yield
    finally:
        if rabbit:
            queues = [noop.QUEUE, PUBLISH_QUEUE, *(q for q in WORKER_QUEUES if q not in had[0])]
            exchanges = [noop.EXCHANGE, *(e for e in WORKER_EXCHANGES if e not in had[1])]
            _delete_rabbit(broker_url, queues, exchanges)
        elif broker_dir is not None:
            shutil.rmtree(broker_dir, ignore_errors=True)


def _existing(broker_url: str) -> tuple[list[str], list[str]]:
    """Which of a worker's queues and exchanges the vhost has (passive declares, one channel each)."""
    queues, exchanges = [], []
    with Connection(broker_url) as conn:
        for names, found, declare in (
            (WORKER_QUEUES, queues, "queue_declare"),
            (WORKER_EXCHANGES, exchanges, "exchange_declare"),
        ):
            for name in names:
                channel = conn.channel()
                try:
                    kwargs = {"queue": name} if declare == "queue_declare" else {"exchange": name, "type": "topic"}
                    getattr(channel, declare)(passive=True, **kwargs)
                    found.append(name)
                except conn.channel_errors:
                    continue
                with contextlib.suppress(*conn.channel_errors):
                    channel.close()
    return queues, exchanges


def _delete_rabbit(broker_url: str, queues: list[str], exchanges: list[str]) -> None:
    with Connection(broker_url) as conn:
        channel = conn.default_channel
        for name in queues:
            channel.queue_delete(queue=name)
        for name in exchanges:
            channel.exchange_delete(exchange=name)


def fs_broker_dir(log_dir: Path) -> Path:
    """The filesystem broker of the ceilings: a folder of its own beside the shop's logs."""
    path = log_dir / "ceiling-broker"
    path.mkdir(parents=True, exist_ok=True)
    return path
