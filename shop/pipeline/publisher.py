"""Publishing a batch of outbox rows: a message per subscriber, all confirmed by the broker in bounded time.

Every message of the batch is published first, then the broker's confirms are awaited once
(``shop.pipeline.confirms``): one round trip per batch instead of one per message. A row counts as
published only when every copy of every one of its messages was acked; a nack fails that row
alone, and a confirm that does not come within ``OUTBOX_CONFIRM_TIMEOUT`` (or a connection that
breaks) leaves the rows still waiting *lost*, for the relay to decide whether the broker is away.

The messages are Celery's own, built as ``apply_async`` builds them (``shop.pipeline.task_messages``).

The relay owns its broker connection (one per process) instead of borrowing Celery's pool, so
that after a timeout or a broken connection it can drop it: a confirm that arrives late on it
must never be taken for the confirm of another message. The embedded filesystem broker has no
confirms: a publish there is done when it returns.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from celery import current_app as app  # the project's app (shop/celery.py), without importing the project
from django.conf import settings
from kombu import Connection, Producer

from shop.pipeline import faults, task_messages
from shop.pipeline.confirms import ConfirmTracker
from shop.pipeline.queues import is_rabbitmq
from shop.pipeline.request_context import bind_request_id, reset_request_id

log = logging.getLogger("shop.relay")


@dataclass
class BatchOutcome:
    """What became of each row: confirmed, refused (its own fault or a nack), or lost (no answer)."""

    confirmed: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    lost: dict[int, str] = field(default_factory=dict)


class Link:
    """The relay's connection, producer and (on RabbitMQ) the confirm tracker of its channel."""

    def __init__(self) -> None:
        rabbit = is_rabbitmq(app.conf.broker_write_url or app.conf.broker_url)
        # Confirms are asked for by hand (ConfirmTracker); py-amqp's own would wait after each publish.
        # Every other read or write (a queue declare, a full socket) is bounded as a confirm is.
        bound = settings.OUTBOX_CONFIRM_TIMEOUT
        transport = {"confirm_publish": False, "read_timeout": bound, "write_timeout": bound}
        options = {"transport_options": transport} if rabbit else {}
        self.connection: Connection = app.connection_for_write(**options)
        self.producer = Producer(self.connection)
        for queue in app.amqp.queues.values():  # once per connection, not a declare check per message
            queue(self.producer.channel).declare()
        self.tracker = ConfirmTracker(self.producer.channel) if rabbit else None
        self.broken = (*self.connection.connection_errors, *self.connection.channel_errors, OSError)

    @contextlib.contextmanager
    def corked(self) -> Iterator[None]:
        """Hold the batch's frames in the kernel until the batch is written (Linux ``TCP_CORK``),
        so that the broker reads one large segment instead of one per message, then wakes once.
        Nothing is held back for long: uncorking sends at once, before the confirms are awaited."""
        sock = getattr(self.connection.connection, "sock", None) if self.tracker else None
        cork = getattr(socket, "TCP_CORK", None)
        if sock is None or cork is None:
            yield
            return
        sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # a broken socket: the batch is retried on a new one
                sock.setsockopt(socket.IPPROTO_TCP, cork, 0)

    def close(self, graceful: bool) -> None:
        """Graceful: the AMQP close handshake. Otherwise close the socket: a broker that stopped
        answering would never answer the handshake either."""
        try:
            self.connection.release() if graceful else self.connection.collect()
        except Exception:  # already broken: nothing to close cleanly
            log.debug("closing the relay's broker connection failed", exc_info=True)


_link: list[Link] = []  # this process's own, dropped after a timeout or a broken connection


def _get_link() -> Link:
    if not _link:
        _link.append(Link())
    return _link[0]


def drop_producer(*, graceful: bool = False) -> None:
    """Close the relay's broker connection: a confirm that arrives late on it must never be
    taken for the confirm of the next message."""
    while _link:
        _link.pop().close(graceful)


def publish_batch(rows: list[dict[str, Any]]) -> BatchOutcome:
    """Publish every row's messages, then wait once for the confirms. A broken connection is
    retried once on a fresh one (the first publish after a broker restart, or on a connection the
    broker closed while the relay was idle, fails); the rows still unconfirmed then are lost."""
    task_messages.import_tasks()
    copies = 2 if faults.enabled("duplicate_publish") else 1
    outcome = BatchOutcome()
    todo = []
    for row in rows:
        try:
            for task, queue, _, _ in task_messages.messages_for(row):
                task_messages.route(task, queue)
        except Exception as exc:  # an unknown task or a malformed replay: this row's own fault
            outcome.refused[row["id"]] = repr(exc)
            continue
        todo.append(row)
    for attempt in range(2):
        try:
            _attempt(_get_link(), todo, copies, outcome)
            break
        except Exception as exc:  # broker down, connection lost, channel closed
            log.warning("publishing a batch of %d row(s) failed: %r", len(todo), exc)
            drop_producer()
            todo = [row for row in todo if row["id"] not in outcome.confirmed and row["id"] not in outcome.refused]
            if attempt:
                outcome.lost.update({row["id"]: repr(exc) for row in todo})
    return outcome


def _attempt(link: Link, rows: list[dict[str, Any]], copies: int, outcome: BatchOutcome) -> None:
    """One pass over the rows on one connection; raises on a broken connection (``link.broken``)."""
    tracker = link.tracker
    with link.corked():
        owner, waiting = _publish_rows(link, rows, copies, outcome)
    for row_id in [row_id for row_id, count in waiting.items() if not count or tracker is None]:
        del waiting[row_id]  # nothing to confirm: no subscriber, or the filesystem broker (written on return)
        outcome.confirmed.append(row_id)
    if tracker is None:
        return
    timeout = settings.OUTBOX_CONFIRM_TIMEOUT
    complete = tracker.wait(timeout)
    _settle(tracker.take(), owner, waiting, outcome)
    if not complete:
        drop_producer()  # a late confirm must not be credited to a later message
        outcome.lost.update(dict.fromkeys(waiting, f"no publisher confirm within {timeout:g} s"))


def _publish_rows(
    link: Link, rows: list[dict[str, Any]], copies: int, outcome: BatchOutcome
) -> tuple[dict[int, int], dict[int, int]]:
    """Publish every row without waiting: which row each delivery tag belongs to, and how many
    messages each row has out."""
    tracker = link.tracker
    owner: dict[int, int] = {}  # delivery tag -> row id
    waiting: dict[int, int] = {}  # row id -> its messages not acked yet
    for row in rows:
        first = tracker.sent if tracker else 0
        token = bind_request_id(row["request_id"] or None)  # the relay's own log lines name the request too
        try:
            waiting[row["id"]] = task_messages.publish_row(link.producer, row, copies)
        except link.broken:
            raise
        except Exception as exc:  # the message could not be built or encoded: this row's own fault
            outcome.refused[row["id"]] = repr(exc)
        finally:
            reset_request_id(token)
            owner.update(dict.fromkeys(range(first + 1, (tracker.sent if tracker else 0) + 1), row["id"]))
    return owner, waiting


def _settle(settled: dict[int, bool], owner: dict[int, int], waiting: dict[int, int], outcome: BatchOutcome) -> None:
    """Credit each confirm to its row: a nack fails the row, the last ack of a row confirms it."""
    for row_id in outcome.refused:
        waiting.pop(row_id, None)
    for tag, acked in settled.items():
        row_id = owner[tag]
        if row_id not in waiting:
            continue
        if not acked:
            del waiting[row_id]
            outcome.refused[row_id] = "nacked by the broker (a queue refused the message)"
            continue
        waiting[row_id] -= 1
        if not waiting[row_id]:
            del waiting[row_id]
            outcome.confirmed.append(row_id)


def broker_unreachable() -> bool:
    """After lost confirms: is it the broker that is away (then no row is to blame)?"""
    drop_producer()
    try:
        with app.connection_for_write() as conn:
            conn.connect()
    except Exception:
        return True
    return False
