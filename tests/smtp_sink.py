"""A real SMTP server for tests: aiosmtpd on a free loopback port, down until started."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from aiosmtpd.controller import Controller


class Sink:
    """What the SMTP server received, and how it answers: accept, refuse, hold or hang up."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.rcpt_reply = ""  # e.g. "451 4.3.0 busy": refuse every recipient with it
        self.after_data = "accept"  # or "hold" (answer only once released) or "hang up"
        self.released = threading.Event()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        if self.after_data == "hang up":
            server.transport.abort()
        elif self.after_data == "hold":
            for _ in range(1200):
                if self.released.is_set():
                    break
                await asyncio.sleep(0.05)
        return "250 2.0.0 queued"


class SmtpServer:
    """An aiosmtpd server on a port chosen up front, so it can be down first and up later."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.sink = Sink()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def mailers(self) -> dict[str, Any]:
        options = {"host": "127.0.0.1", "port": self.port, "timeout": 10}
        return {"default": {"BACKEND": "notifications.smtp.EmailBackend", "OPTIONS": options}}

    def start(self) -> None:
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.sink.released.set()
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
