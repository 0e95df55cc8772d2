"""One PostgreSQL ``LISTEN`` per web process, fanned out to the order streams open in it.

Each open order page holds a stream (``shop/storefront/stream.py``) that must wake when its
order has a new event. A ``LISTEN`` connection per stream would cost a PostgreSQL backend per
open page; instead one daemon thread per process holds one dedicated autocommit connection,
outside Django's pool (so it never takes a connection a checkout needs), listens on
``order_events`` (the outbox trigger of ``shop/pipeline/migrations/0003_order_event_notify.py``
sends the order id at commit) and sets the ``threading.Event`` of every stream of that order.

A notification is a hint: one sent while the connection was down is lost. So after every
(re)connection the thread wakes every stream, and each re-reads its order from the timeline.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection

log = logging.getLogger(__name__)

CHANNEL = "order_events"
# How long the thread waits for a notification before it checks that its connection still
# answers (a half-open TCP connection would otherwise be noticed only by the kernel, much later).
CHECK_SECONDS = 5.0
RECONNECT_MAX_SECONDS = 5.0


class OrderEvents:
    """Order id -> the wake-up events of its open streams, fed by one listening thread."""

    def __init__(self, channel: str = CHANNEL) -> None:
        self.channel = channel
        self.listening = threading.Event()  # set while the connection LISTENs
        self.connects = 0  # how many times the thread (re)connected: read by the tests
        self._lock = threading.Lock()
        self._streams: dict[str, set[threading.Event]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()

    @contextmanager
    def subscribe(self, order_id: str, *, ready_timeout: float = 2.0) -> Iterator[threading.Event]:
        """An event set whenever ``order_id`` may have changed, for as long as the block runs.

        Waits (at most ``ready_timeout``) until the thread listens, so that whatever the caller
        reads next is either in its read or announced by a notification still to come.
        """
        woken = threading.Event()
        with self._lock:
            self._start_if_needed()
            self._streams.setdefault(order_id, set()).add(woken)
        try:
            self.listening.wait(ready_timeout)
            yield woken
        finally:
            with self._lock:
                waiting = self._streams.get(order_id)
                if waiting is not None:
                    waiting.discard(woken)
                    if not waiting:
                        del self._streams[order_id]

    def open_streams(self) -> int:
        with self._lock:
            return sum(len(waiting) for waiting in self._streams.values())

    def notify(self, order_id: str) -> int:
        """Wake the streams of ``order_id``; how many there were."""
        with self._lock:
            waiting = list(self._streams.get(order_id, ()))
        for woken in waiting:
            woken.set()
        return len(waiting)

    def wake_all(self) -> None:
        with self._lock:
            waiting = [woken for streams in self._streams.values() for woken in streams]
        for woken in waiting:
            woken.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (tests; a web process just exits, the thread is a daemon)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self._stop = threading.Event()

    def _start_if_needed(self) -> None:
        # Started by the first stream, in the process that serves it (granian forks its workers).
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self.listening.clear()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="order-events", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                with self._connect() as conn:
                    self.connects += 1
                    self.listening.set()
                    backoff = 0.2
                    self.wake_all()  # whatever was notified while we were away
                    self._listen(conn, stop)
            except psycopg.Error as exc:
                log.warning("order events: LISTEN connection lost (%r); reconnecting", exc)
            finally:
                self.listening.clear()
            stop.wait(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    def _listen(self, conn: psycopg.Connection, stop: threading.Event) -> None:
        while not stop.is_set():
            for notice in conn.notifies(timeout=CHECK_SECONDS):
                self.notify(notice.payload)
                if stop.is_set():
                    return
            conn.execute("SELECT 1")  # raises if the server went away

    def _connect(self) -> psycopg.Connection:
        params = connection.get_connection_params()
        for name in ("cursor_factory", "context", "prepare_threshold", "pool"):
            params.pop(name, None)
        params["application_name"] = "shop-web-listener"
        params.pop("options", None)  # the web role's statement timeout: LISTEN waits by design
        conn = psycopg.connect(**params, autocommit=True)
        conn.execute(f"LISTEN {self.channel}")
        return conn


# The process's one hub: every stream of this web process subscribes here.
hub = OrderEvents()
