"""The operations page, its Server-Sent Events stream, its JSON fallback, and ``/metrics``.

Thin views: every figure comes from ``shop.ops.snapshot``. The stream is a sync generator
(granian WSGI streams it; a WSGI server buffers an async one): it gives its database connection
back after each read (a stream holding one starves the checkout of the pool), sends a snapshot
every second, and ends after ``OPS_STREAM_SECONDS``; EventSource reconnects on its own, so a page
left open costs a thread for a bounded time at once. When the client goes, the server's next write
fails and closes the generator, whose ``finally`` runs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

from django.conf import settings
from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shop.ops.access import bearer_ok, is_staff, staff_only
from shop.ops.actions import forms_for_page
from shop.ops.graph import map_graph
from shop.ops.metrics import registry
from shop.ops.snapshot import SOURCES, current_snapshot

STREAM_INTERVAL_S = 1.0
log = logging.getLogger("shop.ops")


@require_GET
@staff_only
def ops_page(request: HttpRequest) -> HttpResponse:
    """The page: the map's graph and the first snapshot inline, live figures from the stream."""
    context = {
        **admin.site.each_context(request),
        "title": "Operations",
        "graph": map_graph(),
        "snapshot": current_snapshot(),
        "sources": SOURCES,
        **forms_for_page(),
    }
    return render(request, "ops/index.html", context)


@require_GET
@staff_only
def snapshot_json(request: HttpRequest) -> JsonResponse:
    """The polling fallback: the same snapshot the stream sends."""
    response = JsonResponse(current_snapshot(), encoder=DjangoJSONEncoder)
    response["Cache-Control"] = "no-store"
    return response


def sse_events(lifetime_s: float, interval_s: float = STREAM_INTERVAL_S) -> Iterator[str]:
    """``data:`` events, one snapshot each, until ``lifetime_s`` has passed. The connection goes
    back after every read, and once more when the generator is closed early."""
    deadline = time.monotonic() + lifetime_s
    sent, ended = 0, False
    try:
        yield "retry: 1000\n\n"
        while True:
            try:
                payload = json.dumps(current_snapshot(), cls=DjangoJSONEncoder)
            finally:
                connection.close()
            sent += 1
            yield f"id: {sent}\nevent: snapshot\ndata: {payload}\n\n"
            if time.monotonic() + interval_s >= deadline:
                break
            time.sleep(interval_s)
        ended = True
        yield "event: end\ndata: {}\n\n"
    finally:
        connection.close()
        log.info("ops stream closed after %d events (%s)", sent, "its lifetime ended" if ended else "the client went away")


@require_GET
@staff_only
def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Server-Sent Events: a snapshot a second, for ``OPS_STREAM_SECONDS`` at most."""
    connection.close()  # the session and user were read: no connection is held while streaming
    response = StreamingHttpResponse(sse_events(settings.OPS_STREAM_SECONDS), content_type="text/event-stream")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # a reverse proxy must not buffer the stream
    return response


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, computed at scrape time. Staff session or the bearer token."""
    if not (is_staff(request) or bearer_ok(request)):
        if request.user.is_authenticated:
            return HttpResponse("Staff only.\n", status=403, content_type="text/plain")
        response = HttpResponse("Log in as staff, or send Authorization: Bearer <METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response["Content-Type"] = "text/plain"
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
