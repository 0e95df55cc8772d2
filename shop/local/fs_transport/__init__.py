"""The embedded broker: kombu's ``filesystem://`` transport, made atomic (``fsatomic://``).

kombu's filesystem transport keeps a broker in plain folders: it works across processes
and supports fanout (so ``celery inspect``, events and Flower work) with no server to run.
Stock, it has two defects this subclass removes:

* a producer creates the message file and only then writes it, so a consumer can claim an
  empty or half-written file, fail to decode it and crash (kombu issue 1551);
* a consumer claims a message by moving it into the system temp dir, which may be another
  filesystem (a copy, not an atomic rename), and deletes it as soon as it has been read.

Here every step is one ``os.replace`` within one filesystem (all folders under one base dir):

* publish: the message is written to ``staging/`` and renamed into ``queue/``, so a reader
  only ever sees complete files;
* claim: ``queue/<name>`` is renamed to ``claimed/<pid>@<host>/<name>``; exactly one consumer
  wins the rename, the others get ``FileNotFoundError`` and try the next file;
* ack: the claimed file is deleted (or moved to ``processed/`` with ``store_processed``) only
  on ack or reject; a requeue, and kombu's restore of unacked messages when a channel closes,
  publish it again flagged ``redelivered``; ``no_ack`` consumers settle at once;
* recovery: the claimed folder of a process of this host that no longer exists is moved back
  into ``queue/`` when a channel opens, and every ``recover_every`` seconds while a consumer
  finds its queues empty; so a task held by a worker that was SIGKILLed is delivered again;
* a delivery limit and a dead-letter queue, as RabbitMQ's quorum queues have them (transport
  options ``delivery_limit`` and ``dead_letter_queue``): every return of a message to its queue
  (a requeue, a restore on close, a recovery) counts in its ``x-delivery-count`` header, and a
  message returned more than ``delivery_limit`` times, or rejected without requeue, is moved
  to the dead-letter queue with an ``x-death`` header instead of looping forever or being
  deleted. Without a dead-letter queue a rejected message is deleted, as in kombu.

Names keep kombu's scheme ``<time>_<uuid>.<queue>.msg`` (sorted names are FIFO), with the time
as zero-padded wall-clock nanoseconds: kombu's monotonic milliseconds restart at boot and are
not padded, so they stop sorting after a reboot. Exchange tables live in ``control/`` as in kombu;
a table file is created whole (a link of a staged file) instead of created empty and then
written, which could let a concurrent binder truncate it or a reader decode an empty file.

Limitations, honestly: recovery relies on pids, so it works on one host only, a reused pid
delays it until that process ends too, and a process that hangs keeps its claims (there is no
visibility timeout); nothing is fsynced (survives process crashes, not power loss); there are no priorities or TTLs,
and consumers poll (latency up to ``polling_interval``; a Celery worker polls from its event loop's
timer, so it is as quick to stop as on RabbitMQ). Bindings and the queues of
event consumers that are gone survive restarts: call :func:`reset` when starting afresh.
RabbitMQ remains the broker for anything beyond one host.

The package's modules import each other relatively and nothing else of the project, so the
transport can be loaded from its folder alone (a Celery app without Django).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kombu.transport import TRANSPORT_ALIASES

from .channel import Channel, QoS, Transport
from .folders import ALIAS, FOLDERS, control_key, queue_of, transport_options

__all__ = ["ALIAS", "FOLDERS", "Channel", "QoS", "Transport", "queue_of", "register", "reset", "transport_options"]


def register() -> None:
    """Make ``fsatomic://`` resolve to this transport (kombu looks URL schemes up in this table)."""
    TRANSPORT_ALIASES[ALIAS] = f"{__name__}:Transport"


def reset(base_dir: Path) -> None:
    """Empty every folder of the broker: messages, claims, bindings and orphaned event queues."""
    for name in FOLDERS:
        shutil.rmtree(Path(base_dir, name), ignore_errors=True)
    Transport.states.pop(control_key(transport_options(base_dir)), None)


register()
