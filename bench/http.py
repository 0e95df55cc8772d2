"""A small HTTP/1.1 client for the load generator: keep-alive connections and a FIFO of waiters.

The load generator first used httpx. With a few hundred requests queued for its
connections, httpcore's pool compares every waiting request with every connection on
each event (``_assign_requests_to_connections``), so at 400 requests/s the client, not the
server, took the whole core and the figures measured the client. Here a request waits
in an ``asyncio.Queue`` for an idle connection: constant work per request, whatever
the backlog. It speaks only what the bench needs: POST a JSON body, read a response
with ``Content-Length`` or chunked encoding, keep the connection unless told to close.

Like a browser's pool, it lends the connection used last first (a few warm connections at a
low rate, not a round of every slot), and a request that finds its reused connection closed by
the server before any byte of an answer is sent again once, on a new connection: a server may
close an idle keep-alive connection whenever it likes, and counting that as a failed checkout
charged the shop for the client's stale socket (184 of 440 requests of a 4/s run, every one
on a connection idle for a minute). Every request carries an ``Idempotency-Key``, so a resend
the server did take is answered from its record, never a second order.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class HTTPError(Exception):
    """The request got no complete response; ``kind`` names how it failed, for counting."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reused = False  # has carried a request before this one

    @staticmethod
    def unanswered(exc: BaseException) -> bool:
        """The failure came before any byte of an answer: a reset, or an end of stream at once."""
        if isinstance(exc, asyncio.IncompleteReadError):
            return not exc.partial
        return isinstance(exc, OSError)

    async def request(self, head: bytes, body: bytes) -> tuple[Response, bool]:
        """Send one request; returns the response and whether the connection may be reused."""
        self.writer.write(head + body)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            content = await self._chunked()
        else:
            content = await self.reader.readexactly(int(fields.get("content-length", "0")))
        self.reused = True
        return Response(status, content), fields.get("connection", "").lower() != "close"

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Up to ``size`` keep-alive connections to one server, lent to requests in arrival order.

    The queue holds ``size`` tokens: an open connection, or ``None``, a slot for opening one.
    """

    def __init__(self, base_url: str, size: int, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.idle: asyncio.LifoQueue[_Connection | None] = asyncio.LifoQueue()
        for _ in range(size):
            self.idle.put_nowait(None)

    async def post(self, path: str, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        body = json.dumps(payload).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        ).encode()
        try:
            return await asyncio.wait_for(self._exchange(head, body), self.timeout)
        except TimeoutError:
            raise HTTPError("timeout") from None

    async def _exchange(self, head: bytes, body: bytes, *, resend: bool = True) -> Response:
        conn = await self._borrow()
        try:
            response, reusable = await conn.request(head, body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
            self._discard(conn)
            if resend and conn.reused and conn.unanswered(exc):
                return await self._exchange(head, body, resend=False)  # closed by the server while idle
            raise HTTPError("connection-reset" if not isinstance(exc, ValueError) else "bad-response") from None
        except BaseException:  # cancelled by the timeout: the connection is mid-request
            self._discard(conn)
            raise
        if reusable:
            self.idle.put_nowait(conn)
        else:
            self._discard(conn)
        return response

    async def _borrow(self) -> _Connection:
        token = await self.idle.get()
        if token is not None:
            return token
        try:
            return _Connection(*await asyncio.open_connection(self.host, self.port))
        except BaseException as exc:
            self.idle.put_nowait(None)
            if isinstance(exc, OSError):
                raise HTTPError("connect-error") from None
            raise

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self.idle.put_nowait(None)

    async def close(self) -> None:
        while not self.idle.empty():
            conn = self.idle.get_nowait()
            if conn is not None:
                conn.close()
