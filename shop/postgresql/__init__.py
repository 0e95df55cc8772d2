"""The PostgreSQL backend of every process: Django's own, with a health check that costs no round trip.

Django checks a persistent connection before the first query of each request or task
(``CONN_HEALTH_CHECKS``) by sending ``SELECT 1``, and psycopg's pool checks one before lending
it by sending an empty query. Each is a round trip to the server for every task and every
checkout: py-spy of the orders worker during ``bench saturate`` found 9% of its samples in
that ``SELECT 1``. An idle connection has nothing to read, so a look at its socket tells
the same thing for free: a server that restarted, or an administrator's
``pg_terminate_backend``, sends its termination notice and closes the socket, which makes it
readable (data or end of file). Only then is the real query sent, and it decides; a
connection with nothing to read is in use as it was left.

What neither check can see is a peer that vanished without a word (a host switched off, a
cable pulled): the next query waits for TCP to give up, with the round trip or without it.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg
from psycopg import pq


def quiet(connection: Any) -> bool:
    """True when the idle connection looks alive: open, not in a transaction, nothing to read.

    False means "ask the server" (something arrived, or the connection is not idle), not dead."""
    pgconn = connection.pgconn
    if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return False
    try:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):  # the socket is gone
        return False
    return not readable


def check_pooled(connection: Any) -> None:
    """psycopg's pool ``check``: raise when a connection must not be lent (the pool replaces it)."""
    from psycopg_pool import ConnectionPool

    if not quiet(connection):
        ConnectionPool.check_connection(connection)
