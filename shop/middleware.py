"""The project's middleware: every request's id (echoed as ``X-Request-ID`` and handed to the
outbox), checkout latency for ``/metrics``, the API's body guard, and 503 on overload."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from shop.pipeline.latency_metrics import observe_checkout
from shop.pipeline.request_context import bind_request_id, reset_request_id
from shop.storefront.overload import overload_response

_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = bind_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response["X-Request-ID"] = request_id
        return response


# The requests that place an order: (method, path) -> the histogram's endpoint label.
CHECKOUTS = {("POST", "/api/orders"): "api", ("POST", "/checkout"): "form", ("POST", "/api/checkout/sync"): "sync"}


class CheckoutLatencyMiddleware:
    """Times every checkout, whatever its answer (201, a refusal, a 503 under overload), into
    ``shop_checkout_latency_seconds``: the figure the shop exists to keep low, seen from the server."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        endpoint = CHECKOUTS.get((request.method or "", request.path))
        if endpoint is None:
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        observe_checkout(endpoint, response.status_code, time.perf_counter() - started)
        return response


class ApiBodyGuardMiddleware:
    """Refuse what the API cannot take before anything parses it: 413 for an oversized
    body, 411 for a body without a length, 415 for a body that is not JSON. Answered in
    the API's error shape.

    A refused body is still read to its end (up to ``MAX_DRAIN_BYTES``) before the answer
    goes out: granian closes a connection whose request body is unread, and a client still
    sending then gets a broken pipe or a reset instead of the 413. Past the bound the answer
    says ``Connection: close``. The same holds for an oversized body outside the API, which
    Django itself refuses (413) without reading it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = _content_length(request)
        if request.path.startswith("/api/") and request.method in ("POST", "PUT", "PATCH"):
            if length is None:
                return _json_error(400, "Content-Length is not a number")
            refusal = _api_refusal(request, length)
            if refusal is not None:
                return _finish_body(request, refusal, length)
        response = self.get_response(request)
        if length and length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return _finish_body(request, response, length)
        return response


def _content_length(request: HttpRequest) -> int | None:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return None


def _api_refusal(request: HttpRequest, length: int) -> HttpResponse | None:
    """The error for an API body the API will not parse, or None."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if length > limit:
        return _json_error(413, f"Request body is larger than {limit} bytes")
    if not length and request.META.get("HTTP_TRANSFER_ENCODING"):
        return _json_error(411, "Send the request body with a Content-Length header")
    if request.content_type != "application/json":
        return _json_error(415, "Send the request body as application/json")
    if json_depth(request.body) > MAX_JSON_DEPTH:
        return _json_error(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return None


# Read and discard at most this much of a refused body so that its client reads the
# answer; a client announcing more gets the answer with the connection closed.
MAX_DRAIN_BYTES = 16 * 1024 * 1024


def _finish_body(request: HttpRequest, response: HttpResponse, length: int) -> HttpResponse:
    """Read what is left of the request body (bounded) so that the response reaches the client."""
    if length > MAX_DRAIN_BYTES:
        response["Connection"] = "close"
    elif length:
        while request.read(64 * 1024):  # no further than Content-Length; nothing if already read
            pass
    elif request.META.get("HTTP_TRANSFER_ENCODING") and (stream := request.META.get("wsgi.input")):
        left = MAX_DRAIN_BYTES + 1  # chunked: Django sees no body, so read the raw input
        while left > 0 and (chunk := stream.read(min(left, 64 * 1024))):
            left -= len(chunk)
        if left <= 0:
            response["Connection"] = "close"
    return response


# An order is three levels deep (order -> items -> item); anything far deeper is an attack
# on the parser (a recursion error), refused before it is parsed.
MAX_JSON_DEPTH = 8


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text, counted without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message, "fields": {}}, status=status)


class OverloadMiddleware:
    """Any view (and its template) that fails for want of database capacity answers 503 with
    ``Retry-After`` instead of 500: see shop/storefront/overload.py. The API's own handler does
    the same inside django-ninja (which shows a traceback instead under DEBUG)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return overload_response(request, exception)
