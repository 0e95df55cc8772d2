"""Faults on real processes, and the chaos runner that combines them.

The runner starts the shop's own processes (``shop/local/processes.py``: web, relay,
one worker per queue, beat) under a :class:`Supervisor` that restarts whatever
dies, as a real deployment's supervisor would. A load thread places orders
through the HTTP API at a steady rate, retrying a failed request with the same
``Idempotency-Key`` as a real client would. A :class:`Nemesis`, on a seeded
schedule, SIGKILLs worker children, worker main processes and the relay,
restarts RabbitMQ and PostgreSQL (immediate mode: a crash), pauses a worker
past the broker's consumer timeout, publishes every event twice for a while,
and makes a handler crash its process once for an order. Then the faults heal,
the pipeline quiesces and :func:`shop.proof.audit.run` checks every invariant.

The fault functions are public: ``tests/test_faults.py`` injects each one alone.
"""

from shop.proof.chaos.outages import (
    broker_restartable,
    broker_start,
    database_start,
    duplicate_publishing,
    kill_relay,
    kill_worker_child,
    kill_worker_main,
    own_vhost,
    pause_worker,
    restart_broker,
    restart_database,
    short_consumer_timeout,
)
from shop.proof.chaos.runner import FAULT_KINDS, Summary, heal, run, use_fresh_database, write_json
from shop.proof.chaos.supervisor import Supervisor, database_url, shop_processes

__all__ = [
    "FAULT_KINDS",
    "Summary",
    "Supervisor",
    "broker_restartable",
    "broker_start",
    "database_start",
    "database_url",
    "duplicate_publishing",
    "heal",
    "kill_relay",
    "kill_worker_child",
    "kill_worker_main",
    "own_vhost",
    "pause_worker",
    "restart_broker",
    "restart_database",
    "run",
    "shop_processes",
    "short_consumer_timeout",
    "use_fresh_database",
    "write_json",
]
