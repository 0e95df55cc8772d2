"""An oversized body against the real web server (the demo's granian command), over a socket.

The shop refuses a body over ``MAX_REQUEST_BYTES`` before reading it; the client must still
read that 413, not a broken pipe or a connection reset because the server closed the
connection with the rest of the body unread.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from shop.local.processes import argv, commands
from tests.fixtures import order_body
from tests.harness import ROOT, child_env, wait_until

pytestmark = [pytest.mark.usefixtures("without_shared_pipeline"), pytest.mark.timeout(180)]
BIG = 3 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web(transactional_db: None, tmp_path: Path) -> Iterator[int]:
    """The demo's web server (two granian workers) on a free port; yields the port."""
    port = free_port()
    log = open(tmp_path / "web.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv(commands(port=port)["web"]), cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(port), 60, interval=0.3, what="the web server to answer")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/products", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def request_head(length: int | None, *, path: str = "/api/orders", chunked: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length or chunked body) from sock."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, f"connection closed before a response: {buf!r}"
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    if "content-length" in headers:
        while len(rest) < int(headers["content-length"]):
            rest += sock.recv(65536)
        return int(status_line.split()[1]), headers, rest[: int(headers["content-length"])]
    while not rest.endswith(b"0\r\n\r\n"):
        data = sock.recv(65536)
        assert data, "connection closed inside a chunked body"
        rest += data
    body, pos = b"", 0
    while (size := int(rest[pos : rest.index(b"\r\n", pos)], 16)) > 0:
        start = rest.index(b"\r\n", pos) + 2
        body, pos = body + rest[start : start + size], start + size + 2
    return int(status_line.split()[1]), headers, body


def test_a_3_mb_body_sent_whole_reads_a_413_and_the_connection_stays_usable(web: int) -> None:
    body = b'{"email": "' + b"x" * BIG + b'"}'
    with socket.create_connection(("127.0.0.1", web), timeout=30) as sock:
        sock.sendall(request_head(len(body)))
        for start in range(0, len(body), 64 * 1024):  # a client on a real network: the body keeps coming
            sock.sendall(body[start : start + 64 * 1024])
        status, _, payload = read_response(sock)
        assert status == 413
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        assert json.loads(payload) == {"error": f"Request body is larger than {limit} bytes", "fields": {}}

        sock.sendall(b"GET /api/products HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, payload = read_response(sock)
        assert status == 200 and isinstance(json.loads(payload), list)


def test_a_3_mb_body_from_httpx_reads_a_413(web: int) -> None:
    body = json.dumps({**order_body(), "name": "x" * BIG}).encode()
    headers = {"Content-Type": "application/json"}
    response = httpx.post(f"http://127.0.0.1:{web}/api/orders", content=body, headers=headers, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"].startswith("Request body is larger than")


def test_a_body_past_the_drain_bound_reads_a_413_with_connection_close(web: int) -> None:
    with socket.create_connection(("127.0.0.1", web), timeout=30) as sock:
        # Announces 1 GiB and waits for the answer (as a client sending Expect: 100-continue does).
        sock.sendall(request_head(1024 * 1024 * 1024))
        status, headers, payload = read_response(sock)
    assert status == 413 and headers.get("connection") == "close"
    assert json.loads(payload)["error"].startswith("Request body is larger than")


def test_a_chunked_body_without_a_length_is_refused_with_411(web: int) -> None:
    piece = b"x" * 65536
    with socket.create_connection(("127.0.0.1", web), timeout=30) as sock:
        sock.sendall(request_head(None, chunked=True))
        for _ in range(BIG // len(piece)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"0\r\n\r\n")
        status, _, payload = read_response(sock)
    assert status == 411
    assert json.loads(payload) == {"error": "Send the request body with a Content-Length header", "fields": {}}


def test_an_oversized_form_post_outside_the_api_reads_its_error(web: int) -> None:
    body = b"email=" + b"x" * BIG
    head = request_head(len(body), path="/checkout").replace(b"application/json", b"application/x-www-form-urlencoded")
    with socket.create_connection(("127.0.0.1", web), timeout=30) as sock:
        sock.sendall(head)
        for start in range(0, len(body), 64 * 1024):
            sock.sendall(body[start : start + 64 * 1024])
        status, _, _ = read_response(sock)
    assert 400 <= status < 500
