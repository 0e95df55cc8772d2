"""The order page's Server-Sent Events: a sync generator woken by the process's listener.

Under granian's WSGI interface a sync generator is streamed chunk by chunk (an async one is
buffered whole), and each open stream holds one of granian's blocking threads, never a database
connection: the stream borrows one from the pool for each read and gives it back at once
(``connection.close()``; without that, five reading streams made a checkout wait 10.8 s).

Every message carries the order's timeline position as its ``id:``, so ``Last-Event-ID`` (sent
by the browser when it reconnects, after a lifetime's end or a web server restart) resumes from
the stored timeline: nothing is sent again that the client has, and nothing it lacks is skipped.
The position is the last outbox id shown *and* how many rows of the order were shown, because
outbox ids commit out of order (three workers answer the same order at once): a row committed
late under a lower id changes the count even when it does not change the last id.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import environ
import psycopg
from django.conf import settings
from django.db import DatabaseError, connection

from shop.storefront.order_events import OrderEvents

log = logging.getLogger(__name__)

POSITION = re.compile(r"(\d{1,18})-(\d{1,9})-(\d{1,9})")
# Streams per web process unless STREAM_MAX_OPEN says otherwise: the threads granian runs beyond
# those kept for requests (``WEB_STREAMS`` in shop/local/processes.py; a test keeps them equal).
MAX_OPEN = 64
# Woken streams that read at once per web process (STREAM_READS_AT_ONCE). The orders of open pages
# move through FIFO queues together, so their news comes in bursts that woke every stream in the
# same second; unbounded, those reads took the pool's connections (8 per process) and the GIL
# from the checkouts beside them. A stream that waits here holds no connection.
READS_AT_ONCE = 2


@dataclass(frozen=True)
class Position:
    """Where on its timeline a client is: the last outbox id it was shown, how many rows, and the
    payment's attempt count (the journey's one input that is not a row: a retry writes none)."""

    last_id: int = 0
    count: int = 0
    attempts: int = 0

    def __str__(self) -> str:
        return f"{self.last_id}-{self.count}-{self.attempts}"

    @classmethod
    def parse(cls, text: str) -> Position | None:
        """``<last id>-<count>-<attempts>`` as sent in ``id:``; empty is None; else a ValueError."""
        if not text:
            return None
        match = POSITION.fullmatch(text.strip())
        if match is None:
            raise ValueError("Last-Event-ID must be an event id this stream sent (<id>-<count>-<attempts>)")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    @classmethod
    def of(cls, event_ids: list[int], attempts: int = 0) -> Position:
        return cls(max(event_ids, default=0), len(event_ids), attempts)


@dataclass(frozen=True)
class Snapshot:
    """One read of the order: its position, what the page redraws, and whether it is over."""

    position: Position
    data: dict[str, Any]
    settled: bool


@dataclass(frozen=True)
class Limits:
    max_open: int  # streams per web process; past it the page is answered 503 and polls
    lifetime: float  # seconds a stream lives before it ends (the browser reconnects)
    keepalive: float  # seconds between keep-alive comments (and how soon a gone client is seen)


def limits() -> Limits:
    """The stream limits: Django settings when a test sets them, else the environment."""
    return Limits(
        max_open=int(_setting("STREAM_MAX_OPEN", MAX_OPEN)),
        lifetime=_setting("STREAM_LIFETIME_SECONDS", 300.0),
        keepalive=_setting("STREAM_KEEPALIVE_SECONDS", 15.0),
    )


def _setting(name: str, default: float) -> float:
    value = getattr(settings, name, None)
    return float(value) if value is not None else environ.Env().float(name, default=default)


class Slots:
    """A per-process count of open streams, so that they never hold every thread of the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if self.open >= limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


slots = Slots()


def message(snapshot: Snapshot) -> bytes:
    """One SSE message: ``id:`` the position, ``data:`` the snapshot as one line of JSON."""
    data = json.dumps({**snapshot.data, "settled": snapshot.settled}, separators=(",", ":"))
    return f"id: {snapshot.position}\nevent: journey\ndata: {data}\n\n".encode()


def read_and_release(read: Callable[[], Snapshot]) -> Snapshot:
    """Read the order on a pooled connection and give the connection back at once."""
    try:
        return read()
    finally:
        connection.close()


class Readers:
    """At most ``READS_AT_ONCE`` woken streams of this process read at a time; the rest wait
    their turn without a connection (the number is read once per process, like the pool's)."""

    def __init__(self) -> None:
        self._gate: threading.BoundedSemaphore | None = None
        self._lock = threading.Lock()

    def read(self, read: Callable[[], Snapshot]) -> Snapshot:
        with self._lock:
            if self._gate is None:
                self._gate = threading.BoundedSemaphore(max(1, int(_setting("STREAM_READS_AT_ONCE", READS_AT_ONCE))))
        with self._gate:
            return read_and_release(read)


readers = Readers()


class EventStream:
    """The iterable a ``StreamingHttpResponse`` sends. Django registers its ``close``, which the
    WSGI server calls when the response ends, the client went or the server stops: the stream's
    subscription and its slot are given back there, whether or not it was ever iterated."""

    def __init__(
        self, order_id: str, read: Callable[[], Snapshot], *, since: Position | None, hub: OrderEvents, limits: Limits
    ) -> None:
        self.order_id, self.read, self.since, self.hub, self.limits = order_id, read, since, hub, limits
        self._closed = False
        self._events: Iterator[bytes] = iter(())
        self._subscription = hub.subscribe(order_id)
        self._woken = self._subscription.__enter__()  # before the first read: no change falls between
        try:
            self.first = read_and_release(read)
        except BaseException:
            self.close()
            raise
        self._events = self._generate()

    def nothing_to_send(self) -> bool:
        """Settled, and the client has seen it all: the view answers 204 (EventSource stops)."""
        return self.first.settled and self.first.position == self.since

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def _generate(self) -> Iterator[bytes]:
        deadline = time.monotonic() + self.limits.lifetime
        yield b"retry: 1000\n\n"  # the browser's reconnection delay, in ms
        snapshot, shown = self.first, self.since
        while True:
            if snapshot is not None:
                if snapshot.position != shown:
                    yield message(snapshot)
                    shown = snapshot.position
                if snapshot.settled:
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            snapshot = None
            if self._woken.wait(min(self.limits.keepalive, remaining)):
                self._woken.clear()  # before the read: a change after it sets the event again
                try:
                    snapshot = readers.read(self.read)
                except (DatabaseError, psycopg.Error) as exc:  # a pool timeout too: end, the browser reconnects
                    log.warning("order stream %s: read failed (%r); ending", self.order_id, exc)
                    return
            else:
                yield b": keep-alive\n\n"  # a client that went is noticed when this write fails

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if (stop := getattr(self._events, "close", None)) is not None:
                stop()
        finally:
            self._subscription.__exit__(None, None, None)
            slots.give_back()
