"""The stack's own limits, measured in the same run and on the same servers as the shop under test.

A figure of the shop means little alone: 150 checkouts/s is poor if the stack does 2,000
and excellent if the web server with one INSERT does 160. So beside every scenario the
bench measures what the shop is built from, doing nothing but the minimum:

* ``view_insert_*``: a Django view that INSERTs one row, with the shop's settings and
  middleware, served by the demo's own web server command (``bench/ceiling_app.py``);
* ``confirmed_publish`` / ``confirmed_publish_batched``: publishes confirmed by the broker,
  one at a time as the relay does them, and in batches as it could;
* ``celery_noop``: a demo worker consuming tasks that do nothing (``bench/noop.py``);
* ``pg_insert_commit_*``: INSERT+COMMIT transactions on one and on two connections.

Each ceiling is ``{"value", "unit", "how", ...}``; ``how`` says exactly what was measured.
The tables, queues and processes made for it are removed again, also when a step fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import ceiling_broker, ceiling_cleanup
from bench.ceiling_names import PATH, TABLE
from bench.load import Client, LoadResult
from bench.processes import log_tail, running
from bench.runtime import free_port
from shop.local.processes import argv, commands
from shop.pipeline.queues import is_rabbitmq

log = logging.getLogger("bench")
APP = "bench.ceiling_app:application"
QUICK_SECONDS = 2.0
FULL_SECONDS = 10.0
OPEN_RATES = (20, 50, 100, 200, 400)  # the checkout scenario's rates
QUICK_RATES = (20, 50)
CLOSED_CONNECTIONS = 8


def measure(
    *, database_url: str, broker_url: str, log_dir: Path, quick: bool = False, env: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every ceiling, on the database and broker of these URLs (``env``: the child environment to
    start from, e.g. ``BenchShop.env``; the URLs given here replace its DATABASE_URL and CELERY_BROKER_URL)."""
    seconds = QUICK_SECONDS if quick else FULL_SECONDS
    broker_dir = None if is_rabbitmq(broker_url) else ceiling_cleanup.fs_broker_dir(log_dir)
    child_env = child_environment(env, database_url, broker_url, broker_dir)
    found: dict[str, dict[str, Any]] = {}
    with own_table(database_url):
        with _step("pg_insert_commit"):
            found |= pg_insert_commit(database_url, seconds)
        with _step("view_insert"):
            found |= view_insert(child_env, log_dir, seconds, QUICK_RATES if quick else OPEN_RATES)
    with ceiling_cleanup.cleaned_broker(broker_url, broker_dir):
        with _step("confirmed_publish"):
            found["confirmed_publish"] = ceiling_broker.confirmed_publish(broker_url, broker_dir, seconds)
        with _step("confirmed_publish_batched"):
            found["confirmed_publish_batched"] = ceiling_broker.confirmed_publish_batched(broker_url, broker_dir, seconds)
        with _step("celery_noop"):
            found["celery_noop"] = ceiling_broker.celery_noop(broker_url, broker_dir, child_env, log_dir, seconds)
    return found


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    """Log how long a ceiling took to measure, set-up included: the bench's own overhead."""
    start = time.monotonic()
    yield
    log.info("ceiling %s measured in %.1f s", name, time.monotonic() - start)


def child_environment(env: dict[str, str] | None, database_url: str, broker_url: str, broker_dir: Path | None) -> dict[str, str]:
    child = {**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"}
    child["DATABASE_URL"], child["CELERY_BROKER_URL"] = database_url, broker_url
    if broker_dir is not None:
        child["SHOP_BROKER_DIR"] = str(broker_dir)
    return child


@contextlib.contextmanager
def own_table(database_url: str) -> Iterator[None]:
    """The ceilings' table, created for the run and dropped after it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
            "created_at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)"
        )
    try:
        yield
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


# ---- PostgreSQL -------------------------------------------------------------------


def pg_insert_commit(database_url: str, seconds: float) -> dict[str, dict[str, Any]]:
    found = {}
    for connections in (1, 2):
        done, elapsed = _insert_commit(database_url, connections, seconds)
        found[f"pg_insert_commit_{connections}"] = {
            "value": round(done / elapsed, 1),
            "unit": "tx/s",
            "how": f"psycopg on {connections} connection{'s' * (connections > 1)} "
            f"({connections} thread{'s' * (connections > 1)}), each transaction one INSERT of a row "
            f"into a table of its own and a COMMIT, for {elapsed:.1f} s",
            "transactions": done,
            "connections": connections,
        }
    return found


def _insert_commit(database_url: str, connections: int, seconds: float) -> tuple[int, float]:
    counts = [0] * connections
    errors: list[BaseException] = []
    barrier = threading.Barrier(connections + 1)
    stop = threading.Event()

    def loop(slot: int) -> None:
        try:
            with psycopg.connect(database_url) as conn:
                barrier.wait()
                while not stop.is_set():
                    conn.execute(f"INSERT INTO {TABLE} (payload) VALUES (%s)", ["ceiling"])
                    conn.commit()
                    counts[slot] += 1
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(counts), time.perf_counter() - start


# ---- The web server with one INSERT -------------------------------------------------


def web_argv(port: int) -> list[str]:
    """The demo's web command with only the WSGI target and the port changed."""
    demo = commands(port=port)["web"]
    swapped = demo.replace("shop.wsgi:application", APP)
    assert swapped != demo, demo
    return argv(swapped)


def view_insert(
    env: dict[str, str], log_dir: Path, seconds: float, rates: tuple[int, ...] = OPEN_RATES
) -> dict[str, dict[str, Any]]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with running("ceiling-web", web_argv(port), env, log_dir) as web:
        _wait_created(base_url, web, log_dir)
        log.info("ceiling web server answering after %.1f s", time.monotonic() - started)
        client = Client(base_url, PATH, lambda n: {"n": n})
        client.closed_loop(2, min(1.0, seconds / 4), "warm-up")  # both granian workers import and connect
        steps = [client.open_loop(rate, seconds, f"{rate}/s") for rate in rates]
        closed = client.closed_loop(CLOSED_CONNECTIONS, seconds, f"closed loop x{CLOSED_CONNECTIONS}")
    server = " ".join(web_argv(port)[1:]).split(" bench.")[0]
    found = {}
    for step in steps:
        found |= _open_loop_figures(step, server)
    summary = closed.summary()
    how = (
        f"{CLOSED_CONNECTIONS} connections of bench/load.py's client each POSTing again as soon as answered, "
        f"for {seconds:g} s, to a Django view (the shop's settings and middleware) INSERTing one row in autocommit, "
        f"served by the demo's web command (granian {server})"
    )
    found["view_insert_closed_loop"] = {"value": summary["answered_per_s"], "unit": "req/s", "how": how, **_extra(summary)}
    found["view_insert_closed_loop_p99"] = {"value": summary["p99_ms"], "unit": "ms", "how": how, **_extra(summary)}
    return found


def _open_loop_figures(step: LoadResult, server: str) -> dict[str, dict[str, Any]]:
    summary = step.summary()
    rate = int(step.rate or 0)
    how = (
        f"bench/load.py's open-loop client POSTing {rate} req/s for {step.duration:.0f} s (latency from the "
        "intended send time) to a Django view (the shop's settings and middleware) INSERTing one row in "
        f"autocommit, served by the demo's web command (granian {server})"
    )
    return {
        f"view_insert_p{p}_at_{rate}": {"value": summary[f"p{p}_ms"], "unit": "ms", "how": how, **_extra(summary)}
        for p in (50, 99)
    }


def _extra(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "offered_rate",
        "connections",
        "sent",
        "ok",
        "answered_per_s",
        "errors",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "client_cpu_share",
    )
    return {key: summary[key] for key in keys}


def _wait_created(base_url: str, web: Any, log_dir: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if web.poll() is not None:
            raise RuntimeError(f"the ceiling's web server exited: {log_tail(log_dir, 'ceiling-web')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(base_url + PATH, json={}, timeout=2).status_code == 201:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the ceiling's web server did not answer: {log_tail(log_dir, 'ceiling-web')}")
