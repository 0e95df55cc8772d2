"""``pages``: 100 order pages open at once, beside the checkout they must not slow down.

Each page does what the browser's does: it opens the order's stream
(``/orders/<id>/stream``, Server-Sent Events) and reads it; a page the server refuses (503,
every stream thread taken) polls ``/orders/<id>/live`` once a second instead. The orders are
held in fraud review so that their pages stay open for the whole run (a settled order's stream
ends). Checkout p99 at a fixed rate is measured in eight steps, without and with every page
open, in the order A B B A A B B A: at 20 checkouts/s the pipeline's backlog grows all through
the run on two cores, so a step's p99 drifts with the time it runs at, and this order gives both
sides the same mean time (the earlier layout, 30 s without, 60 s with, 30 s without, compared
a first step whose workers were still idle; three runs gave 1.06x, 1.18x and 1.40x). Each side's
p99 comes from 1,200 checkouts. The goal is at most 20% more.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from bench.load import Client, LoadResult, merged
from bench.scenarios.base import Figure, Result, Run, audit
from bench.workload import order_body, wait_terminal

PAGES, RATE = 100, 20.0
ORDER = "ABBAABBA"  # A: no page open, B: every page open; each side's mean time is the same
POLL_EVERY_S = 1.0


class OpenPages:
    """``ids``' order pages held open on a thread of their own until :meth:`close`."""

    def __init__(self, base_url: str, ids: list[str]) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.ids = parts.hostname or "127.0.0.1", parts.port or 80, ids
        self.streaming = self.polling = self.events = self.polls = self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._all()), name="bench-pages", daemon=True)

    def open(self) -> OpenPages:
        self._thread.start()
        return self

    def close(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(30)
        return {
            "streaming": self.streaming,
            "polling": self.polling,
            "events": self.events,
            "polls": self.polls,
            "errors": self.errors,
        }

    async def _all(self) -> None:
        await asyncio.gather(*(self._page(order_id) for order_id in self.ids))

    async def _get(self, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        return reader, writer, status

    async def _page(self, order_id: str) -> None:
        try:
            reader, writer, status = await self._get(f"/orders/{order_id}/stream")
        except (OSError, ValueError, IndexError):
            self.errors += 1
            return
        if status == 200:
            self.streaming += 1
            try:
                while not self._stop.is_set():
                    try:
                        line = await asyncio.wait_for(reader.readline(), 0.5)
                    except TimeoutError:
                        continue
                    if not line:
                        break
                    self.events += line.startswith(b"data:")
            finally:
                writer.close()
            return
        writer.close()
        self.polling += 1
        while not self._stop.is_set():
            try:
                reader, writer, _ = await self._get(f"/orders/{order_id}/live")
                await reader.read()
                writer.close()
                self.polls += 1
            except (OSError, ValueError, IndexError):
                self.errors += 1
            await asyncio.sleep(POLL_EVERY_S)


def alternate(
    client: Client, pages: Callable[[], OpenPages], seconds: float, settle: float
) -> tuple[dict[str, list[LoadResult]], dict[str, int]]:
    """The checkout steps in ``ORDER`` (A: no page open, B: every page open), the pages opened
    before each run of B steps (and given ``settle`` seconds to connect) and closed after it;
    what the pages saw, added over their openings."""
    steps: dict[str, list[LoadResult]] = {"A": [], "B": []}
    seen: dict[str, int] = {}
    opened: OpenPages | None = None
    openings = 0
    for i, side in enumerate(ORDER):
        if side == "B" and opened is None:
            opened, openings = pages().open(), openings + 1
            time.sleep(settle)
        steps[side].append(client.open_loop(RATE, seconds, f"step {i + 1}: {'pages open' if side == 'B' else 'no page open'}"))
        if opened is not None and ORDER[i + 1 : i + 2] != "B":
            for key, value in opened.close().items():
                seen[key] = seen.get(key, 0) + value
            opened = None
    for key in ("streaming", "polling"):  # pages, not openings
        seen[key] //= max(openings, 1)
    return steps, seen


def run(ctx: Run) -> Result:
    from orders.fraud.services import fraud_decide
    from shop.pipeline import faults

    pages, seconds = ctx.count(PAGES, 10), ctx.seconds(30, 3)
    result = Result("pages", settings={"pages": pages, "rate": RATE, "seconds_without": 2 * seconds, "seconds_with": 2 * seconds})
    with ctx.shop("pages") as shop:
        body = order_body(shop.skus)
        faults.set_switch("fraud_review_rate", "1")  # held in review: their pages stay open
        held = Client(shop.url, "/api/orders", body).closed_loop(8, 120, count=pages)
        faults.set_switch("fraud_review_rate", "0")
        ids = [order_id for order_id, _ in held.created]
        time.sleep(ctx.seconds(5, 1))  # let the held orders reach their review
        client = Client(shop.url, "/api/orders", body)
        steps, seen = alternate(client, lambda: OpenPages(shop.url, ids), seconds / 2, ctx.seconds(3, 1))
        before_load = merged("no page open", steps["A"])
        during_load = merged(f"{len(ids)} pages open", steps["B"])
        before, during = before_load.summary(), during_load.summary()
        for order_id in ids:  # let the held orders go on, so that every order settles
            fraud_decide(order_id=order_id, approve=True, user=None)
        placed = ids + [order_id for load in (before_load, during_load) for order_id, _ in load.created]
        drain = wait_terminal(placed, ctx.seconds(600, 120))
        how = f"{RATE:g} checkouts/s for {2 * seconds:g} s, open loop"
        result.add(
            Figure("checkout p99, no page open", before["p99_ms"], "ms", f"{how}, in the steps without pages ({ORDER})"),
            Figure(
                f"checkout p99, {len(ids)} order pages open",
                during["p99_ms"],
                "ms",
                f"{how}; {seen['streaming']} streaming, {seen['polling']} polling (refused a stream)",
                ceiling_value=before["p99_ms"],
                ceiling_label="no page open",
            ),
            Figure("pages streaming", seen["streaming"], "pages", f"{seen['events']} events received"),
            Figure("pages polling", seen["polling"], "pages", f"{seen['polls']} polls; {seen['errors']} errors"),
            Figure(
                "checkout errors with pages open", sum(during["errors"].values()), "requests", f"{during['errors'] or 'none'}"
            ),
        )
        result.data = {
            "before": before,
            "during": during,
            "order": ORDER,
            "steps": {side: [load.summary() for load in loads] for side, loads in steps.items()},
            "pages": seen,
        }
        result.audit = audit(placed, drained=drain is not None)
    return result
