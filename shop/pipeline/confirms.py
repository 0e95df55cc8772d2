"""Publisher confirms for a whole batch: publish every message, then wait once for the acks.

py-amqp's ``confirm_publish`` transport option waits for each message's confirm before the
next publish, so a relay spends one broker round trip (a quorum queue's fsync) per message.
Here the channel is put in confirm mode by hand and publishes do not wait; the broker numbers
them 1, 2, 3... on the channel (its delivery tags) and acks or nacks them, often several at a
time (``multiple``), and :meth:`ConfirmTracker.wait` reads those frames until every tag is
settled or the deadline passes. A late confirm must never be credited to another message, so
whoever gets a timeout or an error from this channel drops the whole connection.
"""

from __future__ import annotations

import time
from typing import Any


class ConfirmTracker:
    """Delivery tags of one confirm-mode py-amqp channel and what the broker said about them."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.sent = 0  # the tag of the last publish: the broker counts from 1 after confirm.select
        self.floor = 1  # every tag below it is settled
        self.outcome: dict[int, bool] = {}  # tag -> acked (True) or nacked (False), while at or above floor
        self.settled: dict[int, bool] = {}  # every tag settled since the last take()
        channel.confirm_select()  # waits for confirm.select-ok: the channel is in confirm mode
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        publish = channel.basic_publish

        def counted(*args: Any, **kwargs: Any) -> Any:
            """Every publish on the channel takes the next tag, whoever makes it."""
            result = publish(*args, **kwargs)
            self.sent += 1
            return result

        channel.basic_publish = counted

    def _settle(self, tag: int, multiple: bool, acked: bool) -> None:
        first = self.floor if multiple else tag
        for t in range(first, tag + 1):
            if t >= self.floor and t not in self.outcome:
                self.outcome[t] = acked
                self.settled[t] = acked
        while self.floor in self.outcome:
            del self.outcome[self.floor]
            self.floor += 1

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, True)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, False)

    def pending(self) -> bool:
        return self.floor <= self.sent

    def wait(self, timeout: float) -> bool:
        """Read the broker's frames until every published tag is settled; False at the deadline.

        A connection error (the broker went away) propagates to the caller.
        """
        deadline = time.monotonic() + timeout
        connection = self.channel.connection
        while self.pending():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                connection.drain_events(timeout=remaining)
            except TimeoutError:
                return False
        return True

    def take(self) -> dict[int, bool]:
        """The tags settled since the last call, with their outcome (True: acked)."""
        settled, self.settled = self.settled, {}
        return settled
