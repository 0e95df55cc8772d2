"""The operations stream through the real web server (granian WSGI, as the demo runs it): events
arrive one by one, open streams hold no database connection (more streams than the pool has
connections leave the shop serving), and a stream whose client went away is closed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Proc, wait_until, web_server
from tests.test_overload import free_port

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

STREAMS = 5  # more than the worker's pool of 2 connections


@pytest.fixture
def web(catalog: dict[str, int], tmp_path: Any) -> Iterator[tuple[str, Proc]]:
    with web_server(
        tmp_path,
        free_port(),
        threads=12,
        DATABASE_POOL_MIN="1",
        DATABASE_POOL_MAX="2",
        DATABASE_POOL_TIMEOUT="1",
        OPS_STREAM_SECONDS="60",
    ) as running:
        yield running


@pytest.fixture
def session_cookie(client: Any, django_user_model: Any) -> dict[str, str]:
    """A staff session stored in the test database, which the server process reads."""
    client.force_login(django_user_model.objects.create_user("ops-stream", password="x" * 20, is_staff=True))
    return {"sessionid": client.cookies["sessionid"].value}


def read_events(response: httpx.Response, wanted: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: {}":
            found.append(json.loads(line.removeprefix("data: ")))
            if len(found) == wanted:
                break
    return found


def test_streams_arrive_live_hold_no_connection_and_close_when_the_client_goes(
    web: tuple[str, Proc], session_cookie: dict[str, str]
) -> None:
    url, proc = web
    opened = threading.Barrier(STREAMS + 1, timeout=60)
    release = threading.Event()
    got: list[int] = []

    def watch() -> None:
        with (
            httpx.Client(base_url=url, cookies=session_cookie, timeout=30) as client,
            client.stream("GET", "/ops/stream") as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            events = read_events(response, 2)  # two snapshots, a second apart: streamed, not buffered
            got.append(len(events))
            opened.wait()
            release.wait(30)  # keep the stream open while the shop is asked for other pages

    threads = [threading.Thread(target=watch) for _ in range(STREAMS)]
    for t in threads:
        t.start()
    opened.wait()
    try:
        with httpx.Client(base_url=url, cookies=session_cookie, timeout=10) as client:
            for _ in range(3):  # the pool has 2 connections; 5 open streams hold none of them
                assert client.get("/api/products").status_code == 200
                assert client.get("/ops/snapshot.json").status_code == 200
    finally:
        release.set()
        for t in threads:
            t.join(30)
    assert got == [2] * STREAMS
    wait_until(lambda: proc.log().count("the client went away") >= STREAMS, 20, 0.2, "the server to close every stream")
