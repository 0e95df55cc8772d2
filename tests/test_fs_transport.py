"""The embedded broker (``fsatomic://``): concurrency, fanout, a real Celery worker, crash recovery."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from celery import Celery
from kombu import Connection, Consumer, Exchange, Queue
from kombu.transport import resolve_transport

from shop.local import fs_transport
from shop.local.fs_transport import Transport, reset, transport_options

pytestmark = pytest.mark.embedded

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRODUCERS, CONSUMERS = 4, 4
POLL = 0.01  # consumers poll an idle queue often, as a busy worker does
FORK = multiprocessing.get_context("fork")


def load_options(url: str, base: Path) -> dict[str, Any]:
    """The broker folders under ``base``; kombu's own transport gets the folders it knows."""
    opts = {**transport_options(base), "polling_interval": POLL}
    if url == "filesystem://":
        return {key: opts[key] for key in ("data_folder_in", "data_folder_out", "control_folder", "polling_interval")}
    return opts


def produce(url: str, opts: dict[str, Any], producer: int, count: int, pace: float) -> None:
    with Connection(url, transport_options=opts) as conn:
        queue = conn.SimpleQueue("load")
        for n in range(count):
            queue.put({"id": f"{producer}-{n}"})
            if pace:
                time.sleep(pace)
        queue.close()


def consume(url: str, opts: dict[str, Any], out: str, produced: Any) -> None:
    """Take messages until the producers are done and the queue is empty; record ids and any crash."""
    ids: list[str] = []
    error = None
    try:
        with Connection(url, transport_options=opts) as conn:
            queue = conn.SimpleQueue("load")
            while True:
                try:
                    message = queue.get(timeout=0.5)
                except Empty:
                    if produced.is_set():
                        break
                    continue
                ids.append(message.payload["id"])
                message.ack()
            queue.close()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    Path(out).write_text(json.dumps({"ids": ids, "error": error}))


def run_load(url: str, tmp_path: Path, count: int, pace: float = 0.0) -> dict[str, Any]:
    """4 producer processes publishing ``count`` messages each (one every ``pace`` seconds) and
    4 consumer processes on one queue: what the consumers received."""
    opts = load_options(url, tmp_path)
    with Connection(url, transport_options=opts) as conn:
        conn.SimpleQueue("load").close()  # declared (bound) before anyone publishes
    produced = FORK.Event()
    outs = [tmp_path / f"consumer-{i}.json" for i in range(CONSUMERS)]
    started = time.monotonic()
    consumers = [FORK.Process(target=consume, args=(url, opts, str(out), produced)) for out in outs]
    producers = [FORK.Process(target=produce, args=(url, opts, p, count, pace)) for p in range(PRODUCERS)]
    for proc in consumers + producers:
        proc.start()
    for proc in producers:
        proc.join(60)
    produced.set()
    for proc in consumers:
        proc.join(60)
    elapsed = time.monotonic() - started
    for proc in consumers + producers:
        if proc.is_alive():
            proc.kill()
    results = [json.loads(out.read_text()) if out.exists() else {"ids": [], "error": "no result"} for out in outs]
    received = Counter(i for r in results for i in r["ids"])
    expected = {f"{p}-{n}" for p in range(PRODUCERS) for n in range(count)}
    return {
        "received": sum(received.values()),
        "lost": len(expected - received.keys()),
        "duplicated": sum(1 for count in received.values() if count > 1),
        "errors": [r["error"] for r in results if r["error"]],
        "elapsed": elapsed,
    }


def test_alias_resolves_to_the_transport() -> None:
    fs_transport.register()
    assert resolve_transport("fsatomic") is Transport
    assert Connection("fsatomic://").transport_cls == "fsatomic"


def test_many_producers_and_consumers_every_message_exactly_once(tmp_path: Path) -> None:
    """A backlog: producers publish as fast as they can, consumers race for the oldest files."""
    outcome = run_load("fsatomic://", tmp_path, count=2_500)
    print(f"fsatomic, backlog: {outcome['received']} messages in {outcome['elapsed']:.1f} s: {outcome}")
    assert outcome["errors"] == []
    assert outcome["received"] == PRODUCERS * 2_500
    assert outcome["lost"] == outcome["duplicated"] == 0
    assert not any((tmp_path / "claimed").rglob("*.msg")), "every claim settled on ack"
    assert not any((tmp_path / "staging").iterdir())


@pytest.mark.parametrize(
    "url",
    [
        "fsatomic://",
        pytest.param(
            "filesystem://",
            marks=pytest.mark.xfail(strict=True, reason="kombu #1551: a consumer takes a file before it is written"),
        ),
    ],
)
def test_consumers_waiting_on_an_idle_queue_take_only_whole_messages(url: str, tmp_path: Path) -> None:
    """No backlog: consumers wait for each message, so they look at files as soon as they appear."""
    outcome = run_load(url, tmp_path, count=500, pace=0.005)
    print(f"{url} idle queue: {outcome['received']} messages in {outcome['elapsed']:.1f} s: {outcome}")
    assert outcome["errors"] == []
    assert outcome["received"] == PRODUCERS * 500
    assert outcome["lost"] == outcome["duplicated"] == 0


def test_size_purge_requeue_and_restore_on_close(tmp_path: Path) -> None:
    opts = transport_options(tmp_path)
    with Connection("fsatomic://", transport_options=opts) as conn:
        queue = conn.SimpleQueue("work")
        for n in range(3):
            queue.put({"n": n})
        first = queue.get(timeout=1)
        assert first.payload == {"n": 0}
        assert queue.qsize() == 2, "a claimed message is not ready"
        first.requeue()
        again = queue.get(timeout=1)
        assert again.payload == {"n": 0}, "a requeued message keeps its place"
        assert again.delivery_info["redelivered"] is True
        queue.close()  # unacked: kombu restores it when the channel closes
    with Connection("fsatomic://", transport_options=opts) as conn:
        queue = conn.SimpleQueue("work")
        assert queue.qsize() == 3
        message = queue.get(timeout=1)
        assert message.payload == {"n": 0}
        message.ack()
        assert queue.clear() == 2
        queue.close()
    assert not any((tmp_path / "queue").iterdir())


def test_no_ack_consumer_leaves_no_claim(tmp_path: Path) -> None:
    with Connection("fsatomic://", transport_options=transport_options(tmp_path)) as conn:
        queue = conn.SimpleQueue("fire-and-forget", no_ack=True)
        queue.put({"n": 1})
        assert queue.get(timeout=1).payload == {"n": 1}
        queue.close()
    assert not any((tmp_path / "claimed").rglob("*.msg"))


def test_fanout_reaches_every_bound_queue_from_another_process(tmp_path: Path) -> None:
    opts = transport_options(tmp_path)
    exchange = Exchange("broadcast", type="fanout", durable=False)
    queues = [Queue(name, exchange, durable=False) for name in ("listener-a", "listener-b")]
    received: dict[str, list[Any]] = {q.name: [] for q in queues}
    with Connection("fsatomic://", transport_options=opts) as conn:
        for queue in queues:
            queue(conn.default_channel).declare()
        publisher = textwrap.dedent(f"""
            from kombu import Connection, Exchange
            from shop.local.fs_transport import transport_options
            with Connection("fsatomic://", transport_options=transport_options({str(tmp_path)!r})) as conn:
                conn.Producer().publish({{"hello": "all"}}, exchange=Exchange("broadcast", type="fanout", durable=False),
                                        declare=[Exchange("broadcast", type="fanout", durable=False)])
        """)
        subprocess.run([sys.executable, "-c", publisher], cwd=PROJECT_ROOT, check=True, timeout=60)
        for queue in queues:
            with Consumer(conn, [queue], callbacks=[lambda body, msg, q=queue.name: (received[q].append(body), msg.ack())]):
                conn.drain_events(timeout=5)
    assert received == {"listener-a": [{"hello": "all"}], "listener-b": [{"hello": "all"}]}


def hold_a_claim(opts: dict[str, Any], ready: Any) -> None:
    with Connection("fsatomic://", transport_options=opts) as conn:
        message = conn.SimpleQueue("jobs").get(timeout=5)
        ready.send(message.payload)
        time.sleep(60)  # killed before it acks


@pytest.mark.parametrize("when", ["a channel opens", "a consumer finds its queue empty"])
def test_message_of_a_killed_consumer_is_delivered_again(when: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = transport_options(tmp_path)
    with Connection("fsatomic://", transport_options=opts) as conn:
        conn.SimpleQueue("jobs").put({"job": 42})
    receive, send = FORK.Pipe(duplex=False)
    holder = FORK.Process(target=hold_a_claim, args=(opts, send))
    holder.start()
    assert receive.poll(10) and receive.recv() == {"job": 42}
    claimed = list((tmp_path / "claimed").rglob("*.jobs.msg"))
    assert [path.parent.name.partition("@")[0] for path in claimed] == [str(holder.pid)]
    with Connection("fsatomic://", transport_options=opts) as conn:
        queue = conn.SimpleQueue("jobs")
        if when == "a channel opens":
            os.kill(holder.pid, signal.SIGKILL)
            holder.join(10)
            queue.close()
            queue = conn.SimpleQueue("jobs", channel=conn.channel())
        else:  # the consumer was already running when the holder died
            monkeypatch.setattr(fs_transport.Channel, "recover_every", 0.2)
            with pytest.raises(Empty):
                queue.get(timeout=0.5)
            os.kill(holder.pid, signal.SIGKILL)
            holder.join(10)
        message = queue.get(timeout=5)
        assert message.payload == {"job": 42}
        message.ack()
        queue.close()
    assert not any((tmp_path / "claimed").rglob("*.msg"))


def test_reset_empties_every_folder(tmp_path: Path) -> None:
    with Connection("fsatomic://", transport_options=transport_options(tmp_path)) as conn:
        conn.SimpleQueue("leftover").put({"n": 1})
    reset(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(fs_transport.FOLDERS)
    assert not any(tmp_path.rglob("*.*"))


CELERY_APP = """
import importlib.util
import sys
from pathlib import Path

from celery import Celery

# The transport package on its own: importing the project package would set up the project itself.
spec = importlib.util.spec_from_file_location(
    "fs_transport", {module!r}, submodule_search_locations=[str(Path({module!r}).parent)]
)
fs_transport = importlib.util.module_from_spec(spec)
sys.modules["fs_transport"] = fs_transport
spec.loader.exec_module(fs_transport)

BASE = Path({base!r})
app = Celery("fsapp", broker="fsatomic://")
app.conf.update(
    broker_transport_options=fs_transport.transport_options(BASE / "broker"),
    task_default_queue="fsapp",
    task_acks_late=True,
    worker_send_task_events=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="fsapp.touch")
def touch(name):
    (BASE / name).write_text("done")
"""


def test_celery_worker_executes_a_task_and_answers_ping_and_sends_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefork worker acking late: the task runs, the worker answers a broadcast, events flow."""
    # Celery prefers CELERY_BROKER_URL from the environment over the broker an app names.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    (tmp_path / "fsapp.py").write_text(CELERY_APP.format(module=fs_transport.__file__, base=str(tmp_path)))
    app = Celery("probe", broker="fsatomic://", set_as_current=False)
    app.conf.broker_transport_options = transport_options(tmp_path / "broker")
    # The worker's broker is the one its app names: no project settings, no CELERY_* from the environment.
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE" and not key.startswith("CELERY_")}
    env["PYTHONPATH"] = str(tmp_path)
    command = [sys.executable, "-m", "celery", "-A", "fsapp", "worker", "-c", "1", "-n", "fsworker@%h", "-l", "INFO"]
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    events: list[str] = []
    try:
        deadline = time.monotonic() + 30
        replies = None
        while not replies and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            replies = app.control.inspect(timeout=1).ping()
        assert replies and any(name.startswith("fsworker@") for name in replies), (tmp_path / "worker.log").read_text()

        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": lambda event: events.append(event["type"])})
            receiver.queue(conn.default_channel).declare()  # bound before anything is sent
            listening = threading.Thread(target=receiver.capture, kwargs={"wakeup": False}, daemon=True)
            listening.start()
            app.send_task("fsapp.touch", args=["touched"], queue="fsapp")
            deadline = time.monotonic() + 20
            while "task-succeeded" not in events and time.monotonic() < deadline:
                time.sleep(0.1)
            receiver.should_stop = True
            listening.join(15)
        assert (tmp_path / "touched").read_text() == "done"
        assert "task-succeeded" in events, events
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
    assert not any((tmp_path / "broker" / "claimed").rglob("*.msg"))
