"""The health check of a persistent connection reads its socket first: no round trip for a
connection that is alive, a real query (and a new connection) for one the server closed."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from shop.postgresql import check_pooled, quiet
from tests.harness import db_url

pytestmark = pytest.mark.django_db(transaction=True)


def last_query(pid: int) -> str:
    with psycopg.connect(db_url(), autocommit=True) as other:
        return other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]


def terminate(pid: int) -> None:
    with psycopg.connect(db_url(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):
            if not other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return
            other.execute("SELECT pg_sleep(0.02)")


def test_a_live_idle_connection_is_usable_without_a_query() -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT 42 AS marker")
        pid = cur.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert quiet(connection.connection)
    assert connection.is_usable()
    assert last_query(pid) == "SELECT pg_backend_pid()", "the check sent nothing to the server"


def test_a_connection_the_server_terminated_fails_the_check_and_is_replaced() -> None:
    with connection.cursor() as cur:
        pid = cur.execute("SELECT pg_backend_pid()").fetchone()[0]
    terminate(pid)
    assert not quiet(connection.connection), "the termination notice made the socket readable"
    assert not connection.is_usable()
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    with connection.cursor() as cur:
        assert cur.execute("SELECT pg_backend_pid()").fetchone()[0] != pid, "a new connection"


def test_the_pools_check_raises_for_a_terminated_connection_only() -> None:
    with psycopg.connect(db_url(), autocommit=True) as conn:
        check_pooled(conn)
        terminate(conn.info.backend_pid)
        with pytest.raises(psycopg.OperationalError):
            check_pooled(conn)


def test_a_connection_inside_a_transaction_is_asked_not_guessed() -> None:
    with psycopg.connect(db_url()) as conn:
        conn.execute("SELECT 1")  # a transaction is open: the socket says nothing about it
        assert not quiet(conn)
