"""The order stream under the real web server (the demo's granian command, one worker): pushed
events, resuming from Last-Event-ID after a restart, the cap, and a client that goes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from shop.local.processes import argv, commands
from shop.pipeline.models import OutboxEvent
from shop.storefront.stream import Position
from tests.harness import ROOT, child_env, wait_until
from tests.test_oversized_body import free_port

pytestmark = [pytest.mark.usefixtures("without_shared_pipeline", "order_streams"), pytest.mark.timeout(180)]


class WebServer:
    """granian as the small arrangement runs it (one worker, so one cap), stopped and started again."""

    def __init__(self, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.env = child_env(STREAM_KEEPALIVE_SECONDS="0.5", **env)
        self.log = log_dir / "web.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = argv(commands(port=self.port, arrangement="small")["web"])
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.answers, 60, interval=0.3, what="the web server to answer")

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/products", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def web(transactional_db: None, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[WebServer]:
    server = WebServer(tmp_path, **getattr(request, "param", {}))
    server.start()
    yield server
    server.stop()


class Events:
    """An SSE client: the messages of one open stream, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next(self) -> dict:
        fields: dict[str, str] = {}
        for line in self._lines:
            if not line:
                if "data" in fields:
                    return {"id": fields["id"], **json.loads(fields["data"])}
                fields = {}
            elif not line.startswith(":") and ": " in line:
                name, value = line.split(": ", 1)
                fields[name] = value
        raise AssertionError("the stream ended")


@contextmanager
def order_stream(web: WebServer, order_id: str, last: str = "") -> Iterator[Events]:
    headers = {"Last-Event-ID": last} if last else {}
    url = f"{web.url}/orders/{order_id}/stream"
    with httpx.Client(timeout=httpx.Timeout(10, read=10)) as client, client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Events(response)


def add_event(order_id: str, kind: str) -> None:
    OutboxEvent.objects.create(order_id=order_id, kind=kind, payload={}, message=kind)


def test_the_stream_resumes_from_last_event_id_after_the_web_server_restarts(web, shop_api, catalog):
    order_id = shop_api.place()["id"]
    with order_stream(web, order_id) as events:
        first = events.next()
        add_event(order_id, "payment.authorized")
        pushed = events.next()
        assert Position.parse(pushed["id"]).count == 2 and "Payment authorised." in pushed["html"]

    web.stop()
    add_event(order_id, "fraud.cleared")  # while no web server runs
    web.start()

    with order_stream(web, order_id, pushed["id"]) as events:
        resumed = events.next()
        assert Position.parse(resumed["id"]).count == 3, "the event committed during the restart, and nothing before it"
        assert "Order checks complete." in resumed["html"] and resumed["id"] not in (first["id"], pushed["id"])
        add_event(order_id, "stock.reserved")
        after = events.next()
        assert Position.parse(after["id"]).count == 4 and "Your items are reserved." in after["html"]


@pytest.mark.parametrize("web", [{"STREAM_MAX_OPEN": "1"}], indirect=True)
def test_past_the_cap_a_stream_is_refused_and_checkouts_still_served(web, shop_api, catalog):
    order_id = shop_api.place()["id"]
    with order_stream(web, order_id) as events:
        events.next()
        refused = httpx.get(f"{web.url}/orders/{order_id}/stream", timeout=10)
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
        body = json.dumps(shop_api_body())
        placed = httpx.post(f"{web.url}/api/orders", content=body, headers={"Content-Type": "application/json"}, timeout=10)
        assert placed.status_code == 201


@pytest.mark.parametrize("web", [{"STREAM_MAX_OPEN": "1"}], indirect=True)
def test_a_client_that_goes_gives_its_stream_back(web, shop_api, catalog):
    order_id = shop_api.place()["id"]
    with order_stream(web, order_id) as events:
        events.next()
    # The next keep-alive write fails (0.5 s here): the server closes the stream, and its slot is free.
    wait_until(lambda: _stream_accepted(web, order_id), 10, interval=0.3, what="the gone client's slot to be given back")


def _stream_accepted(web: WebServer, order_id: str) -> bool:
    with httpx.Client(timeout=10) as client, client.stream("GET", f"{web.url}/orders/{order_id}/stream") as response:
        return response.status_code == 200


def shop_api_body() -> dict:
    from tests.fixtures import order_body

    return order_body()
