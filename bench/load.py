"""The bench's HTTP client: open-loop load at a fixed rate, and a closed-loop maximum.

Open loop means each request has an *intended* send time (start + n / rate) and its
latency is counted from that time, not from when the client got round to sending it: a
server that stalls for a second is charged the whole second for every request that
should have gone out meanwhile (no coordinated omission). Latencies go into an HDR
histogram (microseconds, 3 significant digits), so p99 and max are exact to 0.1%.

The client is one asyncio loop on one thread (``bench/http.py``), so its own CPU time is that
thread's CPU time: reported beside every figure, a client-bound result is recognisable.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.http import HTTPError, Pool, Response

Body = Callable[[int], dict[str, Any]]
MAX_LATENCY_US = 120_000_000  # two minutes: anything slower is a timeout anyway


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, MAX_LATENCY_US, 3)


@dataclass
class LoadResult:
    """What one load step saw. ``samples`` is (seconds since the step began, latency ms, outcome)."""

    label: str
    rate: float | None  # offered requests/s; None for a closed loop
    connections: int | None = None
    duration: float = 0.0
    sent: int = 0
    ok: int = 0
    errors: Counter = field(default_factory=Counter)
    histogram: HdrHistogram = field(default_factory=new_histogram)
    samples: list[tuple[float, float, str]] = field(default_factory=list)
    created: list[tuple[str, float]] = field(default_factory=list)  # (order id, wall time of the 201)
    client_cpu_seconds: float = 0.0
    started_at: float = 0.0  # wall clock

    def record(self, offset: float, latency_s: float, outcome: str) -> None:
        self.histogram.record_value(max(1, min(int(latency_s * 1e6), MAX_LATENCY_US)))
        self.samples.append((offset, latency_s * 1000, outcome))
        if outcome == "ok":
            self.ok += 1
        else:
            self.errors[outcome] += 1

    def percentile_ms(self, p: float) -> float | None:
        if not self.histogram.get_total_count():
            return None
        return self.histogram.get_value_at_percentile(p) / 1000

    def summary(self) -> dict[str, Any]:
        """The figures a table or a JSON file wants; latency over every request, failed ones included."""
        return {
            "label": self.label,
            "offered_rate": self.rate,
            "connections": self.connections,
            "duration_s": round(self.duration, 2),
            "sent": self.sent,
            "ok": self.ok,
            "answered_per_s": round(self.ok / self.duration, 1) if self.duration else None,
            "errors": dict(self.errors),
            "p50_ms": _round(self.percentile_ms(50)),
            "p90_ms": _round(self.percentile_ms(90)),
            "p99_ms": _round(self.percentile_ms(99)),
            "max_ms": _round(self.histogram.get_max_value() / 1000 if self.histogram.get_total_count() else None),
            "client_cpu_s": round(self.client_cpu_seconds, 2),
            "client_cpu_share": round(self.client_cpu_seconds / self.duration, 2) if self.duration else None,
            "histogram": self.histogram.encode().decode() if self.histogram.get_total_count() else None,
        }

    def per_second(self, origin: float = 0.0) -> list[dict[str, Any]]:
        """p50 and p99 of the requests intended in each second: the checkout line of a chart,
        ``t`` in seconds since ``origin`` (a wall-clock time, such as a sampler's start)."""
        buckets: dict[int, list[float]] = {}
        for offset, latency_ms, _ in self.samples:
            buckets.setdefault(int(offset), []).append(latency_ms)
        rows = []
        for second in sorted(buckets):
            values = sorted(buckets[second])
            rows.append(
                {
                    "t": round(self.started_at + second - origin, 3),
                    "n": len(values),
                    "p50_ms": round(values[len(values) // 2], 2),
                    "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 2),
                }
            )
        return rows


def merged(label: str, steps: list[LoadResult]) -> LoadResult:
    """The steps as one (same rate): their histograms and counts added, for a figure over all of them."""
    out = LoadResult(label=label, rate=steps[0].rate if steps else None)
    for step in steps:
        out.duration += step.duration
        out.sent += step.sent
        out.ok += step.ok
        out.errors.update(step.errors)
        out.histogram.add(step.histogram)
        out.client_cpu_seconds += step.client_cpu_seconds
        out.created.extend(step.created)
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def outcome_of(response: Response | None, error: HTTPError | None) -> str:
    """``ok`` for the answer the endpoint promises, otherwise the kind of failure, for counting."""
    if error is not None:
        return error.kind
    assert response is not None
    return "ok" if response.status in (200, 201) else f"http-{response.status}"


class Client:
    """A load client for one endpoint: ``path`` is POSTed with ``body(n)`` and a fresh Idempotency-Key,
    over up to ``max_connections`` keep-alive connections (``bench/http.py``)."""

    def __init__(self, base_url: str, path: str, body: Body, *, timeout: float = 30.0, max_connections: int = 256) -> None:
        self.base_url = base_url
        self.path = path
        self.body = body
        self.timeout = timeout
        self.max_connections = max_connections
        self.counter = 0
        self.key_prefix = f"bench-{time.time_ns():x}"

    async def send(self, client: Pool, result: LoadResult, intended: float, origin: float) -> None:
        n = self.counter
        self.counter += 1
        result.sent += 1
        response = error = None
        try:
            response = await client.post(self.path, self.body(n), {"Idempotency-Key": f"{self.key_prefix}-{n}"})
        except HTTPError as exc:
            error = exc
        done = time.perf_counter()
        outcome = outcome_of(response, error)
        result.record(intended - origin, done - intended, outcome)
        if outcome == "ok" and response is not None:
            order_id = response.json().get("id")
            if order_id:
                result.created.append((order_id, time.time()))

    def warm_up(self, duration: float) -> LoadResult:
        """A few orders at 2/s, not counted: the first step then measures the server, not its
        cold start (the first request's imports and templates, the pool's first connections)."""
        return self.open_loop(2.0, duration, "warm-up")

    def open_loop(self, rate: float, duration: float, label: str = "") -> LoadResult:
        """Send at ``rate`` per second for ``duration`` seconds, whatever the server does; wait for the stragglers."""
        return self.phases([(rate, duration)], label or f"{rate:g}/s")

    def phases(self, phases: list[tuple[float, float]], label: str = "") -> LoadResult:
        """Open loop through (rate, seconds) phases in turn: a quiet spell, a burst, a quiet spell."""
        return _run_apart(self._phases(phases, label or "phases"))

    async def _phases(self, phases: list[tuple[float, float]], label: str) -> LoadResult:
        result = LoadResult(label=label, rate=phases[0][0] if len(phases) == 1 else None)
        client = Pool(self.base_url, self.max_connections, self.timeout)
        try:
            result.started_at = time.time()
            origin = time.perf_counter()
            tasks = []
            for intended in _send_times(origin, phases):
                delay = intended - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.send(client, result, intended, origin)))
            await asyncio.gather(*tasks)
            result.duration = time.perf_counter() - origin  # until the last answer: stragglers count
        finally:
            await client.close()
        return result

    def closed_loop(self, connections: int, duration: float, label: str = "", count: int | None = None) -> LoadResult:
        """``connections`` clients each sending its next request when the last is answered: the maximum
        rate. Stops after ``duration`` seconds, or once ``count`` orders were confirmed."""
        return _run_apart(self._closed_loop(connections, duration, label or f"closed loop x{connections}", count))

    async def _closed_loop(self, connections: int, duration: float, label: str, count: int | None) -> LoadResult:
        result = LoadResult(label=label, rate=None, connections=connections)
        client = Pool(self.base_url, self.max_connections, self.timeout)
        try:
            result.started_at = time.time()
            origin = time.perf_counter()
            end = origin + duration

            async def loop() -> None:
                while time.perf_counter() < end and (count is None or result.sent < count):
                    await self.send(client, result, time.perf_counter(), origin)

            await asyncio.gather(*(loop() for _ in range(connections)))
            result.duration = time.perf_counter() - origin
        finally:
            await client.close()
        return result


def _send_times(origin: float, phases: list[tuple[float, float]]) -> list[float]:
    """Intended send times, evenly spaced within each phase."""
    times, begin = [], origin
    for rate, seconds in phases:
        count = max(1, int(rate * seconds))
        times += [begin + n / rate for n in range(count)]
        begin += seconds
    return times


def _run_apart(step: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    """Run a load step in an event loop on a thread of its own: its CPU time is the client's
    alone, and it runs whether or not the caller's thread already has a loop (a test's)."""
    box: dict[str, Any] = {}

    def target() -> None:
        cpu0 = time.thread_time()
        try:
            box["result"] = asyncio.run(step)
            box["result"].client_cpu_seconds = time.thread_time() - cpu0
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="bench-load")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
