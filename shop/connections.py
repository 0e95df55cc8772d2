"""How each kind of process holds its PostgreSQL connections (read by shop/settings.py).

Opening a connection costs a PostgreSQL backend process (a fork, authentication, catalog
caches): with a new one per request and per task, an order's dozen short sessions cost more
CPU than its queries. So no process opens one per unit of work:

- **web** (granian, which imports ``shop.wsgi``; that module sets ``SHOP_PROCESS_ROLE=web``):
  Django's psycopg pool, ``CONN_MAX_AGE=0`` (a request hands its connection back when it
  ends). The pool caps what a web worker can hold however many threads it runs, waits at most
  ``DATABASE_POOL_TIMEOUT`` for a free connection, and checks a connection before lending
  it, so one broken by a server restart is replaced (shop/postgresql/: the socket first, a
  query only when something arrived on it). Every statement is bounded by
  ``DATABASE_STATEMENT_TIMEOUT``: a request that cannot get a connection or a statement that
  takes too long is answered 503 (shop/storefront/overload.py), never left to queue.
- **everything else** (Celery workers, the relay, beat, Flower, ``manage.py``): one
  persistent connection per thread, health-checked at the start of each task or relay round
  (shop/celery.py, shop/pipeline/relay.py; the check reads the socket before it sends a
  query, shop/postgresql/) and replaced after ``DATABASE_CONN_MAX_AGE``.
  No statement timeout: a stage's work is bounded by Celery's time limits.

The connection each process may hold adds up in ``shop.local.processes.connection_budget``.
"""

from __future__ import annotations

from typing import Any

import environ

from shop.local.processes import WEB_POOL_MAX
from shop.postgresql import check_pooled

WEB = "web"


def configure(database: dict[str, Any], env: environ.Env, role: str) -> None:
    """Set ``database`` (a ``DATABASES`` entry) up for a process of ``role``."""
    options = database.setdefault("OPTIONS", {})
    options.setdefault("application_name", f"shop-{role}")  # who holds what, in pg_stat_activity
    database["ENGINE"] = "shop.postgresql"  # Django's, with a health check that reads the socket first
    database["CONN_HEALTH_CHECKS"] = True
    if role != WEB:
        database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
        return
    database["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django's own persistence is off
    options["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": pool_max(env),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=2.0),
        "max_idle": 60.0,  # back to min_size a minute after a burst
        "check": check_pooled,  # before lending a connection: its socket first, a query only if it must
    }
    statement_ms = int(env.float("DATABASE_STATEMENT_TIMEOUT", default=5.0) * 1000)
    options["options"] = f"{options.get('options', '')} -c statement_timeout={statement_ms}".strip()


def pool_max(env: environ.Env | None = None) -> int:
    """The most connections one web worker's pool opens (``DATABASE_POOL_MAX``)."""
    return (env or environ.Env()).int("DATABASE_POOL_MAX", default=WEB_POOL_MAX)
