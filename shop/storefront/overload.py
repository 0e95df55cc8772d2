"""Overload is answered 503 with ``Retry-After``, never 500.

The web server lends at most ``DATABASE_POOL_MAX`` connections per worker and bounds every
statement (shop/connections.py). A request that waited ``DATABASE_POOL_TIMEOUT`` without a
connection, or whose statement ran past ``DATABASE_STATEMENT_TIMEOUT``, or that PostgreSQL
refused for want of connection slots, has written nothing: either it never reached the
database, or its transaction was rolled back with the cancelled statement (a cancel cannot
land once a commit is under way). So the client is told to come back, and may send the
same request again (with the same Idempotency-Key, if it had one).
"""

from __future__ import annotations

import logging

import psycopg.errors
from django.http import HttpRequest, HttpResponse, JsonResponse
from psycopg_pool import PoolTimeout

log = logging.getLogger("shop.overload")

RETRY_AFTER_SECONDS = 2
# Each means "the database is too busy for this request now"; nothing of it was committed.
_OVERLOAD = {
    PoolTimeout: "no database connection became free in time",
    psycopg.errors.QueryCanceled: "a database statement took too long",
    psycopg.errors.TooManyConnections: "the database has no connection slot free",
    psycopg.errors.CannotConnectNow: "the database is starting up",
}
MESSAGE = "The shop is busy; nothing was saved. Try again in a few seconds."


def overload_reason(exc: BaseException) -> str | None:
    """Why ``exc`` means overload, or None. Django raises its own error ``from`` psycopg's: the
    chain of causes is followed (not the context: an error raised while handling one is a bug)."""
    current: BaseException | None = exc
    for _ in range(5):
        if current is None:
            break
        for kind, reason in _OVERLOAD.items():
            if isinstance(current, kind):
                return reason
        current = current.__cause__
    return None


def overload_response(request: HttpRequest, exc: BaseException) -> HttpResponse | None:
    """The 503 for an overload error (JSON for the API and for JSON clients, HTML otherwise), or None."""
    reason = overload_reason(exc)
    if reason is None:
        return None
    log.warning("overloaded: %s %s answered 503 (%s)", request.method, request.path, reason)
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response: HttpResponse = JsonResponse({"error": MESSAGE, "fields": {}}, status=503)
    else:
        response = HttpResponse(_PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


# No template and no context processors: rendering one would reach for the session, in the database.
_PAGE = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>Busy</title></head>"
    f"<body><h1>The shop is busy</h1><p>{MESSAGE}</p></body></html>"
)
