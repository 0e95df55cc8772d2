"""The broker's ceilings: confirmed publishes (one by one, and batched), and a no-op Celery worker.

All on the vhost of the shop under test, on queues of the bench's own (``bench/noop.py``
declares them as the shop declares its queues: quorum, with its arguments, on RabbitMQ).
On the filesystem broker the same steps go through the project's ``fsatomic://`` transport,
which has no publisher confirms: a publish there is done once its file is renamed into the
queue folder.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import amqp
from celery import current_app
from kombu import Connection, Producer

from bench import noop
from bench.ceiling_cleanup import PUBLISH_QUEUE
from bench.processes import running
from shop.local.fs_transport import transport_options
from shop.local.processes import argv, commands
from shop.pipeline.queues import DEAD_LETTER_QUEUE, DELIVERY_LIMIT, is_rabbitmq

log = logging.getLogger("bench")

BODY = b"x" * 1024
BATCH = 200
CONFIRM_TIMEOUT = 10.0


def connection(broker_url: str, broker_dir: Path | None, *, confirm: bool) -> Connection:
    """A connection as the shop's publishers make it (``confirm_publish`` on RabbitMQ)."""
    if is_rabbitmq(broker_url):
        return Connection(broker_url, transport_options={"confirm_publish": True} if confirm else {})
    assert broker_dir is not None
    options = transport_options(broker_dir, delivery_limit=DELIVERY_LIMIT, dead_letter_queue=DEAD_LETTER_QUEUE)
    return Connection(broker_url, transport_options=options)


def message_count(conn: Connection, name: str) -> int:
    """Ready messages in ``name`` (a passive declare: the broker's own count)."""
    return conn.default_channel.queue_declare(queue=name, passive=True).message_count


def _timed(duration: float, step: Callable[[], int]) -> tuple[int, float]:
    """Call ``step`` (which returns how many it did) until ``duration`` has passed."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < duration:
        done += step()
    return done, time.perf_counter() - start


def confirmed_publish(broker_url: str, broker_dir: Path | None, duration: float) -> dict[str, Any]:
    """One publish at a time, each awaited until the broker confirms it, as the relay publishes."""
    rabbit = is_rabbitmq(broker_url)
    queue = noop.bench_queue(PUBLISH_QUEUE, rabbitmq=rabbit)
    with connection(broker_url, broker_dir, confirm=True) as conn:
        producer = Producer(conn)
        bound = queue(conn.default_channel)
        bound.declare()

        def one() -> int:
            producer.publish(
                BODY,
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                delivery_mode=2,
                content_type="application/octet-stream",
                content_encoding="binary",
                confirm_timeout=CONFIRM_TIMEOUT,
            )
            return 1

        try:
            done, elapsed = _timed(duration, one)
        finally:
            bound.purge()
    how = (
        "a kombu Producer on a connection with confirm_publish, publishing 1 KiB persistent messages "
        "one by one to a quorum queue of its own on the shop's vhost, each awaited until RabbitMQ confirmed it"
        if rabbit
        else "kombu publishes of 1 KiB messages one by one through the project's fsatomic:// transport "
        "(no confirms there: a publish returns once its file is renamed into the queue folder)"
    )
    return {"value": round(done / elapsed, 1), "unit": "msg/s", "how": how, "messages": done, "seconds": round(elapsed, 2)}


def confirmed_publish_batched(broker_url: str, broker_dir: Path | None, duration: float) -> dict[str, Any]:
    """Batches published on a confirm-mode channel, then one wait for all their acks: the relay's potential."""
    if not is_rabbitmq(broker_url):
        result = confirmed_publish(broker_url, broker_dir, duration)
        result["how"] += f"; in batches of {BATCH} it is the same loop, there being no confirm to wait for"
        return result
    queue = noop.bench_queue(PUBLISH_QUEUE, rabbitmq=True)
    with connection(broker_url, None, confirm=False) as conn:
        bound = queue(conn.default_channel)
        bound.declare()
        batches = _Batches(conn.connection, queue)
        try:
            done, elapsed = _timed(duration, batches.publish)
        finally:
            batches.channel.close()
            bound.purge()
    how = (
        f"batches of {BATCH} 1 KiB persistent messages published with py-amqp on a channel in confirm mode "
        "(confirm_select) to a quorum queue of its own on the shop's vhost, then one wait for all their acks"
    )
    return {
        "value": round(done / elapsed, 1),
        "unit": "msg/s",
        "how": how,
        "messages": done,
        "seconds": round(elapsed, 2),
        "batch": BATCH,
    }


class _Batches:
    """Batches on one confirm-mode channel: delivery tags count from 1 after ``confirm_select``."""

    def __init__(self, raw: amqp.Connection, queue: Any) -> None:
        self.raw, self.queue = raw, queue
        self.channel = raw.channel()
        self.channel.confirm_select()
        self.next_tag = 1

    def publish(self) -> int:
        """Publish ``BATCH`` messages, then drain until the broker acked every one of them."""
        first, acked = self.next_tag, set()
        self.next_tag += BATCH

        def on_ack(tag: int, multiple: bool) -> None:
            acked.update(range(first, tag + 1) if multiple else (tag,))

        def on_nack(tag: int, multiple: bool) -> None:
            raise RuntimeError(f"RabbitMQ nacked delivery {tag}")

        events = self.channel.events
        events["basic_ack"].add(on_ack)
        events["basic_nack"].add(on_nack)
        try:
            for _ in range(BATCH):
                message = amqp.Message(BODY, delivery_mode=2)
                self.channel.basic_publish(message, exchange=self.queue.exchange.name, routing_key=self.queue.routing_key)
            while len(acked) < BATCH:
                self.raw.drain_events(timeout=CONFIRM_TIMEOUT)
        finally:
            events["basic_ack"].discard(on_ack)
            events["basic_nack"].discard(on_nack)
        return BATCH


def publish_noops(conn: Connection, count: int) -> None:
    """``count`` no-op task messages in Celery's protocol, straight onto the bench's queue."""
    queue = noop.bench_queue(rabbitmq=is_rabbitmq(conn.as_uri()))
    producer = Producer(conn)
    queue(conn.default_channel).declare()
    amqp_ = current_app.amqp
    for _ in range(count):
        headers, properties, body, _sent = amqp_.create_task_message(uuid.uuid4().hex, noop.TASK, (), {})
        producer.publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            headers=headers,
            serializer="json",
            delivery_mode=2,
            **properties,
        )


def worker_argv() -> list[str]:
    """The demo's worker command line, consuming the bench's queue, with the no-op task included."""
    demo = next(cmd for name, cmd in commands(quiet=True).items() if name.startswith("worker-"))
    queue = demo.split(" -Q ", 1)[1].split()[0]
    swapped = demo.replace(f"-Q {queue} -n {queue}@%h", f"-Q {noop.QUEUE} -n {noop.QUEUE}@%h")
    assert swapped != demo, demo
    return argv(f"{swapped} --include {noop.__name__}")


def celery_noop(
    broker_url: str, broker_dir: Path | None, env: dict[str, str], log_dir: Path, duration: float, guess_per_s: float = 300
) -> dict[str, Any]:
    """Fill a queue with no-op tasks, start one demo worker on it, and time it draining the queue."""
    count = max(500, int(guess_per_s * (duration + 2)))
    with connection(broker_url, broker_dir, confirm=False) as conn:
        began = time.monotonic()
        publish_noops(conn, count)
        _wait_for(lambda: message_count(conn, noop.QUEUE) >= count, 60, "the no-op messages to arrive")
        log.info("%d no-op messages queued in %.1f s", count, time.monotonic() - began)
        with running("ceiling-worker", worker_argv(), env, log_dir) as worker:
            booted = time.monotonic()
            _first_drop(conn, count, worker)
            log.info("ceiling worker took its first message %.1f s after its start", time.monotonic() - booted)
            time.sleep(min(2.0, duration / 4))  # its second child and its event dispatcher warm up first
            start_count, start = message_count(conn, noop.QUEUE), time.perf_counter()
            left, now = start_count, time.perf_counter()
            while left and now - start < duration:
                time.sleep(0.05)
                left, now = message_count(conn, noop.QUEUE), time.perf_counter()
        consumed, elapsed = start_count - left, now - start
    ended = "until the queue was empty" if not left else f"for {elapsed:.1f} s ({left} still queued)"
    ended += ", from a short warm-up after its first message"
    how = (
        f"{count} no-op task messages queued on a queue of their own on the shop's broker, then one worker started "
        "with the demo's worker command line (-Q swapped, --include bench.noop: the shop's Celery settings, "
        f"acks_late, prefetch 1, concurrency 2, prefork), timed by passive queue_declare counts {ended}"
    )
    return {
        "value": round(consumed / elapsed, 1),
        "unit": "tasks/s",
        "how": how,
        "consumed": consumed,
        "seconds": round(elapsed, 2),
    }


def _first_drop(conn: Connection, count: int, worker: Any, timeout: float = 90) -> tuple[int, float]:
    """Wait for the worker to take its first message: the clock starts after that, not at its boot."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the ceiling's worker exited with {worker.returncode}")
        left = message_count(conn, noop.QUEUE)
        if left < count:
            return left, time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError(f"the ceiling's worker took no message within {timeout:.0f} s")


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
